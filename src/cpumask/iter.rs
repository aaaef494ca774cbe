//! Iterating over a mask and building one from ids: [`Iter`], and the
//! iterator and range conversions of [`CpuMask`] and [`WorkerMask`].

use std::iter::FusedIterator;
use std::ops::{Range, RangeInclusive};

use super::bits::{BITS, Bits};
use super::{CpuMask, WorkerMask};

/// Ascending iterator over the ids of a mask, from [`CpuMask::iter`] or
/// [`WorkerMask::iter`].
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

impl<'a> Iter<'a> {
    pub(super) fn new(words: &'a [u64]) -> Iter<'a> {
        Iter {
            words,
            index: 0,
            current: words.first().copied().unwrap_or(0),
        }
    }
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

/// Iterating over a mask type, and building one from ids and ranges of ids.
macro_rules! from_ids {
    ($T:ident, $id:ident, $one:literal, $many:literal) => {
        impl<'a> IntoIterator for &'a $T {
            type Item = usize;
            type IntoIter = Iter<'a>;

            fn into_iter(self) -> Iter<'a> {
                self.iter()
            }
        }

        impl FromIterator<usize> for $T {
            fn from_iter<I: IntoIterator<Item = usize>>(iter: I) -> $T {
                let mut mask = $T::new();
                mask.extend(iter);
                mask
            }
        }

        impl Extend<usize> for $T {
            fn extend<I: IntoIterator<Item = usize>>(&mut self, iter: I) {
                for $id in iter {
                    self.insert($id);
                }
            }
        }

        impl<'a> Extend<&'a usize> for $T {
            fn extend<I: IntoIterator<Item = &'a usize>>(&mut self, iter: I) {
                self.extend(iter.into_iter().copied());
            }
        }

        impl From<Range<usize>> for $T {
            #[doc = concat!("The ", $many, " of `range`; an empty range gives the empty mask.")]
            fn from(range: Range<usize>) -> $T {
                $T {
                    bits: Bits::range(range),
                }
            }
        }

        impl From<RangeInclusive<usize>> for $T {
            #[doc = concat!("The ", $many, " of `range`; an empty range gives the empty mask.")]
            fn from(range: RangeInclusive<usize>) -> $T {
                $T {
                    bits: Bits::range_inclusive(range),
                }
            }
        }
    };
}

for_each_mask!(from_ids);

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

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
}
