//! Iterating over a [`CpuMask`] and building one from ids.

use std::iter::FusedIterator;

use super::{BITS, CpuMask};

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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

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
