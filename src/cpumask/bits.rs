//! [`Bits`]: the growable bit set under both mask types.
//!
//! Every algorithm on masks lives here once; [`CpuMask`](super::CpuMask) and
//! [`WorkerMask`](super::WorkerMask) only wrap it and say what the ids mean.

use std::ops::{Range, RangeInclusive};

use super::Iter;

/// Bits per storage word.
pub(super) const BITS: usize = u64::BITS as usize;

/// A set of `usize` ids, one bit each, in 64-bit words that grow on demand.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub(super) struct Bits {
    // Invariant: no trailing zero words, so that equal sets have equal
    // representations and the derived `PartialEq`/`Hash` are correct.
    words: Vec<u64>,
}

impl Bits {
    pub(super) const fn new() -> Bits {
        Bits { words: Vec::new() }
    }

    /// Ids `0..n`.
    pub(super) fn full(n: usize) -> Bits {
        let mut words = vec![u64::MAX; n / BITS];
        if !n.is_multiple_of(BITS) {
            words.push((1u64 << (n % BITS)) - 1);
        }
        Bits { words }
    }

    /// The ids of `range`; empty for an empty range.
    pub(super) fn range(range: Range<usize>) -> Bits {
        let mut bits = Bits::full(range.end);
        // Clears whole words first so that huge starts do not loop bit by bit.
        let start = range.start.min(range.end);
        let whole = (start / BITS).min(bits.words.len());
        bits.words[..whole].fill(0);
        if let Some(w) = bits.words.get_mut(whole) {
            *w &= !((1u64 << (start % BITS)) - 1);
        }
        bits.trim();
        bits
    }

    /// The ids of `range`; empty for an empty range.
    pub(super) fn range_inclusive(range: RangeInclusive<usize>) -> Bits {
        if range.is_empty() {
            return Bits::new();
        }
        let (start, end) = range.into_inner();
        let mut bits = Bits::range(start..end);
        bits.insert(end);
        bits
    }

    pub(super) fn insert(&mut self, id: usize) -> bool {
        let (word, bit) = (id / BITS, 1u64 << (id % BITS));
        if word >= self.words.len() {
            self.words.resize(word + 1, 0);
        }
        let was_clear = self.words[word] & bit == 0;
        self.words[word] |= bit;
        was_clear
    }

    pub(super) fn remove(&mut self, id: usize) -> bool {
        let (word, bit) = (id / BITS, 1u64 << (id % BITS));
        match self.words.get_mut(word) {
            Some(w) if *w & bit != 0 => {
                *w &= !bit;
                self.trim();
                true
            }
            _ => false,
        }
    }

    pub(super) fn contains(&self, id: usize) -> bool {
        self.words
            .get(id / BITS)
            .is_some_and(|w| w & (1u64 << (id % BITS)) != 0)
    }

    pub(super) fn clear(&mut self) {
        self.words.clear();
    }

    pub(super) fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    pub(super) fn weight(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }

    pub(super) fn first(&self) -> Option<usize> {
        self.words
            .iter()
            .enumerate()
            .find(|(_, w)| **w != 0)
            .map(|(i, w)| i * BITS + w.trailing_zeros() as usize)
    }

    pub(super) fn last(&self) -> Option<usize> {
        // The trimming invariant makes the last word non-zero.
        let w = *self.words.last()?;
        Some((self.words.len() - 1) * BITS + (BITS - 1 - w.leading_zeros() as usize))
    }

    pub(super) fn iter(&self) -> Iter<'_> {
        Iter::new(&self.words)
    }

    /// The ids of `0..n` not in `self`.
    pub(super) fn complement(&self, n: usize) -> Bits {
        let mut out = Bits::full(n);
        for (o, w) in out.words.iter_mut().zip(&self.words) {
            *o &= !w;
        }
        out.trim();
        out
    }

    pub(super) fn is_subset(&self, other: &Bits) -> bool {
        self.words.len() <= other.words.len() && self.words.iter().zip(&other.words).all(|(a, b)| a & !b == 0)
    }

    pub(super) fn intersects(&self, other: &Bits) -> bool {
        self.words.iter().zip(&other.words).any(|(a, b)| a & b != 0)
    }

    /// Replaces each word `a` of `self` with `combine(a, b)`, `b` being the
    /// same word of `rhs` (zero past its end). `grow`: whether words that only
    /// `rhs` has can come out non-zero, so `self` must first grow to them.
    pub(super) fn combine(&mut self, rhs: &Bits, combine: fn(u64, u64) -> u64, grow: bool) {
        if grow && rhs.words.len() > self.words.len() {
            self.words.resize(rhs.words.len(), 0);
        }
        for (i, a) in self.words.iter_mut().enumerate() {
            *a = combine(*a, rhs.words.get(i).copied().unwrap_or(0));
        }
        self.trim();
    }

    fn trim(&mut self) {
        while self.words.last() == Some(&0) {
            self.words.pop();
        }
    }
}
