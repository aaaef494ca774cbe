//! [`CpuMask`]: a set of worker ids (or OS cpu numbers), after the kernel's `cpumask`.
//!
//! The runtime addresses workers the way the kernel addresses CPUs: a mask says
//! which workers a stop involves, [`CpuMask::of`] names a single one, and masks
//! print and parse in the kernel's cpulist form (`"0-3,8,10-11"`), so the same
//! text works in configuration files, logs and on the command line.

use std::fmt;
use std::ops::{Range, RangeInclusive};

mod iter;
mod list;
mod ops;

pub use iter::Iter;
pub use list::{ParseCpuMaskError, ParseCpuMaskErrorKind};

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
        if n % BITS != 0 {
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
        Iter::new(&self.words)
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

impl fmt::Debug for CpuMask {
    // The cpulist is far easier to read in test failures than raw words.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CpuMask({self})")
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn m(s: &str) -> CpuMask {
        s.parse().unwrap()
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
}
