//! The kernel's cpulist text form of both masks (`"0-3,8,10-11"`): `Display`,
//! `Debug` and `FromStr`, and [`ParseCpuMaskError`].

use std::error::Error;
use std::fmt;
use std::str::FromStr;

use super::bits::Bits;
use super::{CpuMask, WorkerMask};

/// Writes `bits` as a kernel cpulist, e.g. `0-3,8,10-11`.
fn write_list(bits: &Bits, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let mut iter = bits.iter().peekable();
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

/// Why a cpulist string could not be parsed into a [`CpuMask`] or a
/// [`WorkerMask`]: both read the same text form, and fail the same way.
///
/// # Examples
///
/// ```
/// use stop_machine::{CpuMask, WorkerMask};
///
/// let err = "3-1".parse::<CpuMask>().unwrap_err();
/// assert_eq!(err.to_string(), "range start 3 greater than end 1");
/// assert_eq!("3-1".parse::<WorkerMask>().unwrap_err(), err);
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
    /// The highest id accepted by the `from_str` of [`CpuMask`] and [`WorkerMask`].
    ///
    /// Parsing caps ids because a mask allocates one bit per id up to its highest,
    /// and a stray `"0-18446744073709551615"` must not exhaust memory. The bound is
    /// far above the kernel's own (`NR_CPUS` is at most 8192).
    ///
    /// # Examples
    ///
    /// ```
    /// use stop_machine::{CpuMask, ParseCpuMaskError, WorkerMask};
    ///
    /// let max = ParseCpuMaskError::MAX_ID;
    /// assert!(max.to_string().parse::<CpuMask>().is_ok());
    /// assert!((max + 1).to_string().parse::<WorkerMask>().is_err());
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
                write!(f, "id {s} exceeds the maximum {}", ParseCpuMaskError::MAX_ID)
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

/// Reads a kernel cpulist; see the `FromStr` impls for the rules.
fn parse_list(s: &str) -> Result<Bits, ParseCpuMaskError> {
    let mut bits = Bits::new();
    if s.trim().is_empty() {
        return Ok(bits);
    }
    for item in s.split(',') {
        let item = item.trim();
        if item.is_empty() {
            return Err(ParseCpuMaskErrorKind::EmptyItem.into());
        }
        match item.split_once('-') {
            None => {
                bits.insert(parse_id(item)?);
            }
            Some((start, end)) => {
                if start.trim().is_empty() || end.trim().is_empty() || end.contains('-') {
                    return Err(ParseCpuMaskErrorKind::InvalidRange(item.to_owned()).into());
                }
                let (start, end) = (parse_id(start)?, parse_id(end)?);
                if start > end {
                    return Err(ParseCpuMaskErrorKind::ReversedRange { start, end }.into());
                }
                bits.combine(&Bits::range_inclusive(start..=end), |a, b| a | b, true);
            }
        }
    }
    Ok(bits)
}

/// The text forms of a mask type.
macro_rules! cpulist {
    ($T:ident, $id:ident, $one:literal, $many:literal) => {
        impl fmt::Display for $T {
            /// Formats the mask as a kernel cpulist, e.g. `0-3,8,10-11`.
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write_list(&self.bits, f)
            }
        }

        impl fmt::Debug for $T {
            // The cpulist is far easier to read in test failures than raw words.
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({self})", stringify!($T))
            }
        }

        impl FromStr for $T {
            type Err = ParseCpuMaskError;

            /// Parses a kernel cpulist such as `"0-3,8,10-11"`.
            ///
            /// Whitespace around items and bounds is ignored, so a line read from
            /// `/sys/devices/system/cpu/online` parses as is; an empty (or blank)
            /// string is the empty mask. The kernel's stride form (`"0-15:2/4"`) is
            /// not supported.
            ///
            /// # Errors
            ///
            /// Returns [`ParseCpuMaskError`] for an empty item (`"1,,2"`), a
            /// non-decimal id (`"a"`), a range missing a bound (`"-1"`, `"1-"`), a
            /// reversed range (`"3-1"`), or an id above [`ParseCpuMaskError::MAX_ID`].
            fn from_str(s: &str) -> Result<$T, ParseCpuMaskError> {
                parse_list(s).map(|bits| $T { bits })
            }
        }
    };
}

for_each_mask!(cpulist);

#[cfg(test)]
mod tests {
    use super::*;

    fn m(s: &str) -> CpuMask {
        s.parse().unwrap()
    }

    fn err(s: &str) -> ParseCpuMaskErrorKind {
        s.parse::<CpuMask>().unwrap_err().kind().clone()
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
