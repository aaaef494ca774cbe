//! [`CpuMask`]: a set of worker ids (or OS cpu numbers), after the kernel's `cpumask`.
//!
//! The runtime addresses workers the way the kernel addresses CPUs: a mask says
//! which workers a stop involves, [`CpuMask::of`] names a single one, and masks
//! print and parse in the kernel's cpulist form (`"0-3,8,10-11"`), so the same
//! text works in configuration files, logs and on the command line.

use std::error::Error;
use std::fmt;
use std::iter::FusedIterator;
use std::ops::{
    BitAnd, BitAndAssign, BitOr, BitOrAssign, BitXor, BitXorAssign, Range, RangeInclusive, Sub, SubAssign,
};
use std::str::FromStr;

const BITS: usize = u64::BITS as usize;

/// A set of worker ids, like the kernel's `struct cpumask`.
///
/// Bits are stored in 64-bit words that grow on demand, so any id can be stored;
/// the mask takes `id / 8` bytes for its highest id. Iteration is always in
/// ascending order.
///
/// `Display` and [`FromStr`] use the kernel's cpulist form (as in
/// `/sys/devices/system/cpu/online` or `taskset -c`): comma-separated ids and
/// inclusive ranges. The empty mask prints as the empty string.
///
/// # Examples
///
/// ```
/// use stop_machine::CpuMask;
///
/// let mut mask: CpuMask = "0-3,8".parse().unwrap();
/// mask.insert(10);
/// mask.insert(11);
/// assert_eq!(mask.to_string(), "0-3,8,10-11");
/// assert_eq!(mask.weight(), 7);
///
/// let evens: CpuMask = (0..12).filter(|w| w % 2 == 0).collect();
/// assert_eq!((&mask & &evens).to_string(), "0,2,8,10");
/// ```
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct CpuMask {
    // Invariant: no trailing zero words, so that equal sets have equal
    // representations and the derived `PartialEq`/`Hash` are correct.
    words: Vec<u64>,
}

impl CpuMask {
    /// Creates an empty mask.
    ///
    /// # Examples
    ///
    /// ```
    /// use stop_machine::CpuMask;
    ///
    /// assert!(CpuMask::new().is_empty());
    /// ```
    pub const fn new() -> CpuMask {
        CpuMask { words: Vec::new() }
    }

    /// Creates a mask holding only `worker`, like the kernel's `cpumask_of`.
    ///
    /// # Examples
    ///
    /// ```
    /// use stop_machine::CpuMask;
    ///
    /// let mask = CpuMask::of(5);
    /// assert_eq!(mask.iter().collect::<Vec<_>>(), [5]);
    /// ```
    pub fn of(worker: usize) -> CpuMask {
        let mut mask = CpuMask::new();
        mask.insert(worker);
        mask
    }

    /// Creates a mask holding workers `0..n`.
    ///
    /// # Examples
    ///
    /// ```
    /// use stop_machine::CpuMask;
    ///
    /// assert_eq!(CpuMask::full(4).to_string(), "0-3");
    /// assert!(CpuMask::full(0).is_empty());
    /// ```
    pub fn full(n: usize) -> CpuMask {
        let mut words = vec![u64::MAX; n / BITS];
        if !n.is_multiple_of(BITS) {
            words.push((1u64 << (n % BITS)) - 1);
        }
        CpuMask { words }
    }

    /// Adds `worker`; returns `true` if it was not already in the mask.
    ///
    /// # Examples
    ///
    /// ```
    /// use stop_machine::CpuMask;
    ///
    /// let mut mask = CpuMask::new();
    /// assert!(mask.insert(200));
    /// assert!(!mask.insert(200));
    /// ```
    pub fn insert(&mut self, worker: usize) -> bool {
        let (word, bit) = (worker / BITS, 1u64 << (worker % BITS));
        if word >= self.words.len() {
            self.words.resize(word + 1, 0);
        }
        let was_clear = self.words[word] & bit == 0;
        self.words[word] |= bit;
        was_clear
    }

    /// Removes `worker`; returns `true` if it was in the mask.
    ///
    /// # Examples
    ///
    /// ```
    /// use stop_machine::CpuMask;
    ///
    /// let mut mask = CpuMask::full(2);
    /// assert!(mask.remove(1));
    /// assert!(!mask.remove(1));
    /// assert_eq!(mask, CpuMask::of(0));
    /// ```
    pub fn remove(&mut self, worker: usize) -> bool {
        let (word, bit) = (worker / BITS, 1u64 << (worker % BITS));
        match self.words.get_mut(word) {
            Some(w) if *w & bit != 0 => {
                *w &= !bit;
                self.trim();
                true
            }
            _ => false,
        }
    }

    /// Returns whether `worker` is in the mask.
    ///
    /// # Examples
    ///
    /// ```
    /// use stop_machine::CpuMask;
    ///
    /// let mask = CpuMask::full(4);
    /// assert!(mask.contains(3));
    /// assert!(!mask.contains(4));
    /// ```
    pub fn contains(&self, worker: usize) -> bool {
        self.words
            .get(worker / BITS)
            .is_some_and(|w| w & (1u64 << (worker % BITS)) != 0)
    }

    /// Removes every worker.
    ///
    /// # Examples
    ///
    /// ```
    /// use stop_machine::CpuMask;
    ///
    /// let mut mask = CpuMask::full(8);
    /// mask.clear();
    /// assert!(mask.is_empty());
    /// ```
    pub fn clear(&mut self) {
        self.words.clear();
    }

    /// Returns whether the mask holds no worker.
    ///
    /// # Examples
    ///
    /// ```
    /// use stop_machine::CpuMask;
    ///
    /// assert!(CpuMask::new().is_empty());
    /// assert!(!CpuMask::of(0).is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    /// Returns the number of workers in the mask (the kernel's `cpumask_weight`).
    ///
    /// # Examples
    ///
    /// ```
    /// use stop_machine::CpuMask;
    ///
    /// let mask: CpuMask = "0-3,100".parse().unwrap();
    /// assert_eq!(mask.weight(), 5);
    /// ```
    pub fn weight(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// Returns the lowest worker in the mask.
    ///
    /// # Examples
    ///
    /// ```
    /// use stop_machine::CpuMask;
    ///
    /// let mask: CpuMask = "7,3,130".parse().unwrap();
    /// assert_eq!(mask.first(), Some(3));
    /// assert_eq!(CpuMask::new().first(), None);
    /// ```
    pub fn first(&self) -> Option<usize> {
        self.words
            .iter()
            .enumerate()
            .find(|(_, w)| **w != 0)
            .map(|(i, w)| i * BITS + w.trailing_zeros() as usize)
    }

    /// Returns the highest worker in the mask.
    ///
    /// # Examples
    ///
    /// ```
    /// use stop_machine::CpuMask;
    ///
    /// let mask: CpuMask = "7,3,130".parse().unwrap();
    /// assert_eq!(mask.last(), Some(130));
    /// assert_eq!(CpuMask::new().last(), None);
    /// ```
    pub fn last(&self) -> Option<usize> {
        // The trimming invariant makes the last word non-zero.
        let w = *self.words.last()?;
        Some((self.words.len() - 1) * BITS + (BITS - 1 - w.leading_zeros() as usize))
    }

    /// Iterates over the workers in ascending order.
    ///
    /// # Examples
    ///
    /// ```
    /// use stop_machine::CpuMask;
    ///
    /// let mask: CpuMask = "9,1-2".parse().unwrap();
    /// assert_eq!(mask.iter().collect::<Vec<_>>(), [1, 2, 9]);
    /// ```
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            words: &self.words,
            index: 0,
            current: self.words.first().copied().unwrap_or(0),
        }
    }

    /// Returns the workers of `0..n` that are *not* in this mask.
    ///
    /// Workers `n` and above are never in the result, whether or not they are in
    /// `self`.
    ///
    /// # Examples
    ///
    /// ```
    /// use stop_machine::CpuMask;
    ///
    /// let busy: CpuMask = "1,3,9".parse().unwrap();
    /// assert_eq!(busy.complement(6).to_string(), "0,2,4-5");
    /// ```
    pub fn complement(&self, n: usize) -> CpuMask {
        let mut out = CpuMask::full(n);
        for (o, w) in out.words.iter_mut().zip(&self.words) {
            *o &= !w;
        }
        out.trim();
        out
    }

    /// Returns the workers in either mask (the same as `self | other`).
    ///
    /// # Examples
    ///
    /// ```
    /// use stop_machine::CpuMask;
    ///
    /// assert_eq!(CpuMask::of(1).union(&CpuMask::of(2)).to_string(), "1-2");
    /// ```
    pub fn union(&self, other: &CpuMask) -> CpuMask {
        let mut out = self.clone();
        out |= other;
        out
    }

    /// Returns the workers in both masks (the same as `self & other`).
    ///
    /// # Examples
    ///
    /// ```
    /// use stop_machine::CpuMask;
    ///
    /// let a = CpuMask::full(4);
    /// let b: CpuMask = "2-9".parse().unwrap();
    /// assert_eq!(a.intersection(&b).to_string(), "2-3");
    /// ```
    pub fn intersection(&self, other: &CpuMask) -> CpuMask {
        let mut out = self.clone();
        out &= other;
        out
    }

    /// Returns the workers in `self` but not in `other` (the same as `self - other`).
    ///
    /// # Examples
    ///
    /// ```
    /// use stop_machine::CpuMask;
    ///
    /// let all = CpuMask::full(4);
    /// assert_eq!(all.difference(&CpuMask::of(2)).to_string(), "0-1,3");
    /// ```
    pub fn difference(&self, other: &CpuMask) -> CpuMask {
        let mut out = self.clone();
        out -= other;
        out
    }

    /// Returns whether every worker in `self` is also in `other`.
    ///
    /// # Examples
    ///
    /// ```
    /// use stop_machine::CpuMask;
    ///
    /// assert!(CpuMask::of(2).is_subset(&CpuMask::full(4)));
    /// assert!(!CpuMask::of(4).is_subset(&CpuMask::full(4)));
    /// assert!(CpuMask::new().is_subset(&CpuMask::new()));
    /// ```
    pub fn is_subset(&self, other: &CpuMask) -> bool {
        self.words.len() <= other.words.len() && self.words.iter().zip(&other.words).all(|(a, b)| a & !b == 0)
    }

    /// Returns whether the two masks have at least one worker in common.
    ///
    /// # Examples
    ///
    /// ```
    /// use stop_machine::CpuMask;
    ///
    /// assert!(CpuMask::full(4).intersects(&CpuMask::of(3)));
    /// assert!(!CpuMask::full(4).intersects(&CpuMask::of(64)));
    /// ```
    pub fn intersects(&self, other: &CpuMask) -> bool {
        self.words.iter().zip(&other.words).any(|(a, b)| a & b != 0)
    }

    fn trim(&mut self) {
        while self.words.last() == Some(&0) {
            self.words.pop();
        }
    }
}

impl fmt::Display for CpuMask {
    /// Formats the mask as a kernel cpulist, e.g. `0-3,8,10-11`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut iter = self.iter().peekable();
        let mut first = true;
        while let Some(start) = iter.next() {
            let mut end = start;
            while iter.peek() == Some(&(end + 1)) {
                end += 1;
                iter.next();
            }
            if !first {
                f.write_str(",")?;
            }
            first = false;
            if start == end {
                write!(f, "{start}")?;
            } else {
                write!(f, "{start}-{end}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for CpuMask {
    // The cpulist is far easier to read in test failures than raw words.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CpuMask({self})")
    }
}

/// Ascending iterator over the workers of a [`CpuMask`], from [`CpuMask::iter`].
///
/// # Examples
///
/// ```
/// use stop_machine::CpuMask;
///
/// let mask = CpuMask::full(3);
/// let mut iter = mask.iter();
/// assert_eq!(iter.next(), Some(0));
/// assert_eq!(iter.collect::<Vec<_>>(), [1, 2]);
/// ```
#[derive(Clone, Debug)]
pub struct Iter<'a> {
    words: &'a [u64],
    index: usize,
    // Bits of `words[index]` not yet yielded.
    current: u64,
}

impl Iterator for Iter<'_> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        while self.current == 0 {
            self.index += 1;
            self.current = *self.words.get(self.index)?;
        }
        let bit = self.current.trailing_zeros() as usize;
        // Clears the lowest set bit.
        self.current &= self.current - 1;
        Some(self.index * BITS + bit)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let rest: usize = self
            .words
            .get(self.index + 1..)
            .unwrap_or(&[])
            .iter()
            .map(|w| w.count_ones() as usize)
            .sum();
        let n = rest + self.current.count_ones() as usize;
        (n, Some(n))
    }
}

impl ExactSizeIterator for Iter<'_> {}

impl FusedIterator for Iter<'_> {}

impl<'a> IntoIterator for &'a CpuMask {
    type Item = usize;
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

impl FromIterator<usize> for CpuMask {
    fn from_iter<I: IntoIterator<Item = usize>>(iter: I) -> CpuMask {
        let mut mask = CpuMask::new();
        mask.extend(iter);
        mask
    }
}

impl Extend<usize> for CpuMask {
    fn extend<I: IntoIterator<Item = usize>>(&mut self, iter: I) {
        for worker in iter {
            self.insert(worker);
        }
    }
}

impl<'a> Extend<&'a usize> for CpuMask {
    fn extend<I: IntoIterator<Item = &'a usize>>(&mut self, iter: I) {
        self.extend(iter.into_iter().copied());
    }
}

impl From<Range<usize>> for CpuMask {
    /// The workers of `range`; an empty range gives the empty mask.
    fn from(range: Range<usize>) -> CpuMask {
        let mut mask = CpuMask::full(range.end);
        // Clears whole words first so that huge starts do not loop bit by bit.
        let start = range.start.min(range.end);
        let whole = (start / BITS).min(mask.words.len());
        mask.words[..whole].fill(0);
        if let Some(w) = mask.words.get_mut(whole) {
            *w &= !((1u64 << (start % BITS)) - 1);
        }
        mask.trim();
        mask
    }
}

impl From<RangeInclusive<usize>> for CpuMask {
    /// The workers of `range`; an empty range gives the empty mask.
    fn from(range: RangeInclusive<usize>) -> CpuMask {
        if range.is_empty() {
            return CpuMask::new();
        }
        let (start, end) = range.into_inner();
        let mut mask = CpuMask::from(start..end);
        mask.insert(end);
        mask
    }
}

macro_rules! binop {
    ($Op:ident, $op:ident, $OpAssign:ident, $op_assign:ident, $combine:expr, $grow:expr) => {
        impl $OpAssign<&CpuMask> for CpuMask {
            fn $op_assign(&mut self, rhs: &CpuMask) {
                if $grow && rhs.words.len() > self.words.len() {
                    self.words.resize(rhs.words.len(), 0);
                }
                let combine: fn(u64, u64) -> u64 = $combine;
                for (i, a) in self.words.iter_mut().enumerate() {
                    *a = combine(*a, rhs.words.get(i).copied().unwrap_or(0));
                }
                self.trim();
            }
        }

        impl $OpAssign<CpuMask> for CpuMask {
            fn $op_assign(&mut self, rhs: CpuMask) {
                self.$op_assign(&rhs);
            }
        }

        impl $Op<&CpuMask> for &CpuMask {
            type Output = CpuMask;

            fn $op(self, rhs: &CpuMask) -> CpuMask {
                let mut out = self.clone();
                out.$op_assign(rhs);
                out
            }
        }

        impl $Op<CpuMask> for CpuMask {
            type Output = CpuMask;

            fn $op(mut self, rhs: CpuMask) -> CpuMask {
                self.$op_assign(&rhs);
                self
            }
        }

        impl $Op<&CpuMask> for CpuMask {
            type Output = CpuMask;

            fn $op(mut self, rhs: &CpuMask) -> CpuMask {
                self.$op_assign(rhs);
                self
            }
        }

        impl $Op<CpuMask> for &CpuMask {
            type Output = CpuMask;

            fn $op(self, rhs: CpuMask) -> CpuMask {
                let mut out = self.clone();
                out.$op_assign(&rhs);
                out
            }
        }
    };
}

binop!(BitOr, bitor, BitOrAssign, bitor_assign, |a, b| a | b, true);
binop!(BitAnd, bitand, BitAndAssign, bitand_assign, |a, b| a & b, false);
binop!(BitXor, bitxor, BitXorAssign, bitxor_assign, |a, b| a ^ b, true);
binop!(Sub, sub, SubAssign, sub_assign, |a, b| a & !b, false);

/// Why a cpulist string could not be parsed into a [`CpuMask`].
///
/// # Examples
///
/// ```
/// use stop_machine::CpuMask;
///
/// let err = "3-1".parse::<CpuMask>().unwrap_err();
/// assert_eq!(err.to_string(), "range start 3 greater than end 1");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseCpuMaskError {
    kind: ParseCpuMaskErrorKind,
}

/// The kinds of [`ParseCpuMaskError`].
///
/// # Examples
///
/// ```
/// use stop_machine::cpumask::ParseCpuMaskErrorKind;
/// use stop_machine::CpuMask;
///
/// let err = "1,,2".parse::<CpuMask>().unwrap_err();
/// assert_eq!(err.kind(), &ParseCpuMaskErrorKind::EmptyItem);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParseCpuMaskErrorKind {
    /// An item between commas was empty, as in `"1,,2"` or `"1,"`.
    EmptyItem,
    /// Something that should be a decimal id was not, as in `"a"` or `"+1"`.
    InvalidNumber(String),
    /// A range lacked a bound or had more than one `-`, as in `"-1"`, `"1-"` or `"1-2-3"`.
    InvalidRange(String),
    /// A range's start was greater than its end, as in `"3-1"`.
    ReversedRange {
        /// The range's first id.
        start: usize,
        /// The range's last id.
        end: usize,
    },
    /// An id was above [`ParseCpuMaskError::MAX_ID`] (or did not even fit in `usize`).
    TooLarge(String),
}

impl ParseCpuMaskError {
    /// The highest id accepted by [`CpuMask::from_str`].
    ///
    /// Parsing caps ids because a mask allocates one bit per id up to its highest,
    /// and a stray `"0-18446744073709551615"` must not exhaust memory. The bound is
    /// far above the kernel's own (`NR_CPUS` is at most 8192).
    ///
    /// # Examples
    ///
    /// ```
    /// use stop_machine::{CpuMask, ParseCpuMaskError};
    ///
    /// let max = ParseCpuMaskError::MAX_ID;
    /// assert!(max.to_string().parse::<CpuMask>().is_ok());
    /// assert!((max + 1).to_string().parse::<CpuMask>().is_err());
    /// ```
    pub const MAX_ID: usize = (1 << 20) - 1;

    /// What went wrong.
    ///
    /// # Examples
    ///
    /// ```
    /// use stop_machine::cpumask::ParseCpuMaskErrorKind;
    /// use stop_machine::CpuMask;
    ///
    /// let err = "a".parse::<CpuMask>().unwrap_err();
    /// assert_eq!(err.kind(), &ParseCpuMaskErrorKind::InvalidNumber("a".into()));
    /// ```
    pub fn kind(&self) -> &ParseCpuMaskErrorKind {
        &self.kind
    }
}

impl From<ParseCpuMaskErrorKind> for ParseCpuMaskError {
    fn from(kind: ParseCpuMaskErrorKind) -> Self {
        ParseCpuMaskError { kind }
    }
}

impl fmt::Display for ParseCpuMaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ParseCpuMaskErrorKind::EmptyItem => f.write_str("empty item in cpu list"),
            ParseCpuMaskErrorKind::InvalidNumber(s) => write!(f, "invalid number '{s}'"),
            ParseCpuMaskErrorKind::InvalidRange(s) => write!(f, "invalid range '{s}'"),
            ParseCpuMaskErrorKind::ReversedRange { start, end } => {
                write!(f, "range start {start} greater than end {end}")
            }
            ParseCpuMaskErrorKind::TooLarge(s) => {
                write!(f, "cpu id {s} exceeds the maximum {}", ParseCpuMaskError::MAX_ID)
            }
        }
    }
}

impl Error for ParseCpuMaskError {}

fn parse_id(s: &str) -> Result<usize, ParseCpuMaskError> {
    let s = s.trim();
    // `usize::from_str` would also take a leading `+`, which no cpulist has.
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ParseCpuMaskErrorKind::InvalidNumber(s.to_owned()).into());
    }
    match s.parse::<usize>() {
        Ok(id) if id <= ParseCpuMaskError::MAX_ID => Ok(id),
        // All digits, so the only failure left is overflow.
        _ => Err(ParseCpuMaskErrorKind::TooLarge(s.to_owned()).into()),
    }
}

impl FromStr for CpuMask {
    type Err = ParseCpuMaskError;

    /// Parses a kernel cpulist such as `"0-3,8,10-11"`.
    ///
    /// Whitespace around items and bounds is ignored, so a line read from
    /// `/sys/devices/system/cpu/online` parses as is; an empty (or blank) string
    /// is the empty mask. The kernel's stride form (`"0-15:2/4"`) is not supported.
    ///
    /// # Errors
    ///
    /// Returns [`ParseCpuMaskError`] for an empty item (`"1,,2"`), a non-decimal id
    /// (`"a"`), a range missing a bound (`"-1"`, `"1-"`), a reversed range
    /// (`"3-1"`), or an id above [`ParseCpuMaskError::MAX_ID`].
    fn from_str(s: &str) -> Result<CpuMask, ParseCpuMaskError> {
        let mut mask = CpuMask::new();
        if s.trim().is_empty() {
            return Ok(mask);
        }
        for item in s.split(',') {
            let item = item.trim();
            if item.is_empty() {
                return Err(ParseCpuMaskErrorKind::EmptyItem.into());
            }
            match item.split_once('-') {
                None => {
                    mask.insert(parse_id(item)?);
                }
                Some((start, end)) => {
                    if start.trim().is_empty() || end.trim().is_empty() || end.contains('-') {
                        return Err(ParseCpuMaskErrorKind::InvalidRange(item.to_owned()).into());
                    }
                    let (start, end) = (parse_id(start)?, parse_id(end)?);
                    if start > end {
                        return Err(ParseCpuMaskErrorKind::ReversedRange { start, end }.into());
                    }
                    mask |= CpuMask::from(start..=end);
                }
            }
        }
        Ok(mask)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeSet, HashSet};

    fn m(s: &str) -> CpuMask {
        s.parse().unwrap()
    }

    fn err(s: &str) -> ParseCpuMaskErrorKind {
        s.parse::<CpuMask>().unwrap_err().kind().clone()
    }

    #[test]
    fn empty_mask() {
        let e = CpuMask::new();
        assert!(e.is_empty());
        assert_eq!(e.weight(), 0);
        assert_eq!(e.first(), None);
        assert_eq!(e.last(), None);
        assert_eq!(e.iter().next(), None);
        assert_eq!(e.to_string(), "");
        assert_eq!(e, CpuMask::default());
        assert_eq!(format!("{e:?}"), "CpuMask()");
    }

    #[test]
    fn insert_remove_contains() {
        let mut mask = CpuMask::new();
        assert!(mask.insert(3));
        assert!(mask.insert(200));
        assert!(!mask.insert(3));
        assert!(mask.contains(3) && mask.contains(200));
        assert!(!mask.contains(4) && !mask.contains(199) && !mask.contains(10_000));
        assert_eq!(mask.weight(), 2);
        assert_eq!((mask.first(), mask.last()), (Some(3), Some(200)));
        assert!(mask.remove(200));
        assert!(!mask.remove(200));
        assert!(!mask.remove(100_000));
        assert_eq!(mask.last(), Some(3));
        // Removing the high bit must shrink the storage back so equality holds.
        assert_eq!(mask, CpuMask::of(3));
        let mut h = HashSet::new();
        h.insert(mask.clone());
        assert!(h.contains(&CpuMask::of(3)));
    }

    #[test]
    fn full_and_word_boundaries() {
        for n in [0, 1, 63, 64, 65, 127, 128, 129, 200] {
            let f = CpuMask::full(n);
            assert_eq!(f.weight(), n, "n={n}");
            assert_eq!(f.last(), n.checked_sub(1));
            assert_eq!(f.iter().collect::<Vec<_>>(), (0..n).collect::<Vec<_>>());
            assert_eq!(f, CpuMask::from(0..n));
            assert_eq!(f, (0..n).collect());
        }
        let mut mask = CpuMask::new();
        mask.extend([63, 64, 127, 128]);
        assert_eq!(mask.to_string(), "63-64,127-128");
        assert_eq!(mask.iter().len(), 4);
    }

    #[test]
    fn ranges() {
        assert_eq!(CpuMask::from(3..7).to_string(), "3-6");
        assert_eq!(CpuMask::from(3..=7).to_string(), "3-7");
        assert!(CpuMask::from(5..5).is_empty());
        #[allow(clippy::reversed_empty_ranges)]
        let reversed = CpuMask::from(7..3);
        assert!(reversed.is_empty());
        assert_eq!(CpuMask::from(130..=130), CpuMask::of(130));
        assert_eq!(CpuMask::from(60..70).weight(), 10);
        assert_eq!(CpuMask::from(128..192).first(), Some(128));
    }

    #[test]
    fn set_operations() {
        let a = m("0-7,100");
        let b = m("4-11");
        assert_eq!((&a | &b).to_string(), "0-11,100");
        assert_eq!((&a & &b).to_string(), "4-7");
        assert_eq!((&a ^ &b).to_string(), "0-3,8-11,100");
        assert_eq!((&a - &b).to_string(), "0-3,100");
        assert_eq!((&b - &a).to_string(), "8-11");
        assert_eq!(a.clone() | b.clone(), a.union(&b));
        assert_eq!(a.clone() & &b, a.intersection(&b));
        assert_eq!(&a - b.clone(), a.difference(&b));
        assert_eq!(a.clone() ^ b.clone(), &(&a | &b) - &(&a & &b));

        // Results that lose their high words must compare equal to fresh masks.
        assert_eq!(&a & &b, CpuMask::from(4..8));
        assert_eq!(&a ^ &a, CpuMask::new());
        assert_eq!(&m("200") - &m("200"), CpuMask::new());

        let mut c = a.clone();
        c |= &b;
        c -= m("0-2");
        c &= m("0-10");
        assert_eq!(c.to_string(), "3-10");
        c ^= m("10-12");
        assert_eq!(c.to_string(), "3-9,11-12");
        c -= CpuMask::full(64);
        assert!(c.is_empty());
    }

    #[test]
    fn subset_and_intersects() {
        let a = m("1-3");
        assert!(a.is_subset(&m("0-4")));
        assert!(a.is_subset(&a));
        assert!(!a.is_subset(&m("1-2")));
        assert!(!m("1,200").is_subset(&m("0-10")));
        assert!(CpuMask::new().is_subset(&a));
        assert!(a.intersects(&m("3,70")));
        assert!(!a.intersects(&m("4,70")));
        assert!(!a.intersects(&CpuMask::new()));
    }

    #[test]
    fn complement_within_n() {
        let a = m("1,3,9,200");
        assert_eq!(a.complement(6).to_string(), "0,2,4-5");
        assert_eq!(a.complement(0), CpuMask::new());
        assert_eq!(a.complement(201).weight(), 201 - 4);
        assert!(!a.complement(201).contains(200));
        assert!(CpuMask::full(130).complement(130).is_empty());
        assert_eq!(CpuMask::new().complement(70), CpuMask::full(70));
    }

    #[test]
    fn iteration_matches_btreeset() {
        let ids = [0, 1, 5, 63, 64, 65, 100, 127, 128, 255, 256, 1000];
        let mask: CpuMask = ids.iter().copied().collect();
        let set: BTreeSet<usize> = ids.iter().copied().collect();
        assert_eq!(
            mask.iter().collect::<Vec<_>>(),
            set.iter().copied().collect::<Vec<_>>()
        );
        assert_eq!((&mask).into_iter().count(), ids.len());
        let mut it = mask.iter();
        it.next();
        assert_eq!(it.size_hint(), (ids.len() - 1, Some(ids.len() - 1)));
        let mut seen = Vec::new();
        for w in &mask {
            seen.push(w);
        }
        assert_eq!(seen.len(), ids.len());
        let mut e = CpuMask::new();
        e.extend(&[7usize, 8]);
        assert_eq!(e.to_string(), "7-8");
    }

    #[test]
    fn display() {
        assert_eq!(m("0-3,8,10-11").to_string(), "0-3,8,10-11");
        assert_eq!(CpuMask::of(5).to_string(), "5");
        assert_eq!(m("1,2").to_string(), "1-2");
        assert_eq!(m("0,2,4").to_string(), "0,2,4");
        assert_eq!(m("62-66,200").to_string(), "62-66,200");
        assert_eq!(format!("{:?}", m("1-2")), "CpuMask(1-2)");
    }

    #[test]
    fn parse_round_trips() {
        for s in [
            "",
            "0",
            "0-3,8,10-11",
            "1,3,5",
            "63-64",
            "0-255",
            "7,200",
            "1000-1002",
        ] {
            assert_eq!(m(s).to_string(), s);
        }
        // Non-canonical input reads fine and prints canonically.
        assert_eq!(m(" 3 , 1-2 ,\t0 \n").to_string(), "0-3");
        assert_eq!(m("5-5").to_string(), "5");
        assert_eq!(m("4-6,5-8,2").to_string(), "2,4-8");
        assert_eq!(m("1 - 3").to_string(), "1-3");
        assert_eq!(m("   "), CpuMask::new());
        assert_eq!(m("200"), CpuMask::of(200));
        assert_eq!(m("0-199").weight(), 200);
        // Leading zeros are still decimal.
        assert_eq!(m("007"), CpuMask::of(7));
    }

    #[test]
    fn parse_errors() {
        assert_eq!(
            err("3-1"),
            ParseCpuMaskErrorKind::ReversedRange { start: 3, end: 1 }
        );
        assert_eq!(
            "3-1".parse::<CpuMask>().unwrap_err().to_string(),
            "range start 3 greater than end 1"
        );
        assert_eq!(err("a"), ParseCpuMaskErrorKind::InvalidNumber("a".into()));
        assert_eq!(
            "a".parse::<CpuMask>().unwrap_err().to_string(),
            "invalid number 'a'"
        );
        assert_eq!(err("1,,2"), ParseCpuMaskErrorKind::EmptyItem);
        assert_eq!(err("1,"), ParseCpuMaskErrorKind::EmptyItem);
        assert_eq!(err(",1"), ParseCpuMaskErrorKind::EmptyItem);
        assert!(
            "1,,2"
                .parse::<CpuMask>()
                .unwrap_err()
                .to_string()
                .contains("empty item")
        );
        assert_eq!(err("-1"), ParseCpuMaskErrorKind::InvalidRange("-1".into()));
        assert_eq!(err("1-"), ParseCpuMaskErrorKind::InvalidRange("1-".into()));
        assert_eq!(err("1-2-3"), ParseCpuMaskErrorKind::InvalidRange("1-2-3".into()));
        assert_eq!(err("-"), ParseCpuMaskErrorKind::InvalidRange("-".into()));
        assert_eq!(err("1-a"), ParseCpuMaskErrorKind::InvalidNumber("a".into()));
        assert_eq!(err("+1"), ParseCpuMaskErrorKind::InvalidNumber("+1".into()));
        assert_eq!(err("1 2"), ParseCpuMaskErrorKind::InvalidNumber("1 2".into()));
        assert_eq!(err("0x10"), ParseCpuMaskErrorKind::InvalidNumber("0x10".into()));
        assert_eq!(
            err("0-15:2/4"),
            ParseCpuMaskErrorKind::InvalidNumber("15:2/4".into())
        );
        assert_eq!(
            err("0-18446744073709551615"),
            ParseCpuMaskErrorKind::TooLarge("18446744073709551615".into())
        );
        assert_eq!(
            err("99999999999999999999999"),
            ParseCpuMaskErrorKind::TooLarge("99999999999999999999999".into())
        );
        let max = ParseCpuMaskError::MAX_ID;
        assert_eq!(m(&max.to_string()).last(), Some(max));
        assert!(matches!(
            err(&(max + 1).to_string()),
            ParseCpuMaskErrorKind::TooLarge(_)
        ));
        // Usable as a boxed error.
        let boxed: Box<dyn Error + Send + Sync> = Box::new("x".parse::<CpuMask>().unwrap_err());
        assert_eq!(boxed.to_string(), "invalid number 'x'");
    }
}
