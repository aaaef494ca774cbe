//! Placeholder: replaced by the full CpuMask.

/// A set of worker ids.
///
/// ```
/// let m: stop_machine::CpuMask = [0, 2].into_iter().collect();
/// assert!(m.contains(2));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct CpuMask {
    bits: Vec<u64>,
}

impl CpuMask {
    /// An empty mask.
    pub fn new() -> CpuMask {
        CpuMask::default()
    }
    /// The mask of one worker.
    pub fn of(w: usize) -> CpuMask {
        let mut m = CpuMask::new();
        m.insert(w);
        m
    }
    /// Workers `0..n`.
    pub fn full(n: usize) -> CpuMask {
        (0..n).collect()
    }
    /// Adds `w`.
    pub fn insert(&mut self, w: usize) -> bool {
        if self.bits.len() <= w / 64 {
            self.bits.resize(w / 64 + 1, 0);
        }
        let had = self.contains(w);
        self.bits[w / 64] |= 1 << (w % 64);
        !had
    }
    /// Whether `w` is in.
    pub fn contains(&self, w: usize) -> bool {
        self.bits.get(w / 64).is_some_and(|b| b & (1 << (w % 64)) != 0)
    }
    /// Whether no worker is in.
    pub fn is_empty(&self) -> bool {
        self.bits.iter().all(|b| *b == 0)
    }
    /// How many workers are in.
    pub fn weight(&self) -> usize {
        self.bits.iter().map(|b| b.count_ones() as usize).sum()
    }
    /// The lowest worker.
    pub fn first(&self) -> Option<usize> {
        self.iter().next()
    }
    /// Ascending worker ids.
    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.bits.len() * 64).filter(|w| self.contains(*w))
    }
}

impl FromIterator<usize> for CpuMask {
    fn from_iter<I: IntoIterator<Item = usize>>(iter: I) -> CpuMask {
        let mut m = CpuMask::new();
        for w in iter {
            m.insert(w);
        }
        m
    }
}
