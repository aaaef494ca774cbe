//! The methods both mask types share, written once for both.

use super::bits::Bits;
use super::{CpuMask, Iter, WorkerMask};

/// The inherent API of a mask type: `$T` holds `$many`, one of which a
/// method's argument `$id` names.
macro_rules! methods {
    ($T:ident, $id:ident, $one:literal, $many:literal) => {
        impl $T {
            /// Creates an empty mask.
            ///
            /// # Examples
            ///
            /// ```
            #[doc = concat!("use stop_machine::", stringify!($T), " as Mask;")]
            ///
            /// assert!(Mask::new().is_empty());
            /// ```
            pub const fn new() -> $T {
                $T { bits: Bits::new() }
            }

            #[doc = concat!("Creates a mask holding only `", stringify!($id), "`, like the kernel's `cpumask_of`.")]
            ///
            /// # Examples
            ///
            /// ```
            #[doc = concat!("use stop_machine::", stringify!($T), " as Mask;")]
            ///
            /// let mask = Mask::of(5);
            /// assert_eq!(mask.iter().collect::<Vec<_>>(), [5]);
            /// ```
            pub fn of($id: usize) -> $T {
                let mut mask = $T::new();
                mask.insert($id);
                mask
            }

            #[doc = concat!("Creates a mask holding ", $many, " `0..n`.")]
            ///
            /// # Examples
            ///
            /// ```
            #[doc = concat!("use stop_machine::", stringify!($T), " as Mask;")]
            ///
            /// assert_eq!(Mask::full(4).to_string(), "0-3");
            /// assert!(Mask::full(0).is_empty());
            /// ```
            pub fn full(n: usize) -> $T {
                $T { bits: Bits::full(n) }
            }

            #[doc = concat!("Adds `", stringify!($id), "`; returns `true` if it was not already in the mask.")]
            ///
            /// # Examples
            ///
            /// ```
            #[doc = concat!("use stop_machine::", stringify!($T), " as Mask;")]
            ///
            /// let mut mask = Mask::new();
            /// assert!(mask.insert(200));
            /// assert!(!mask.insert(200));
            /// ```
            pub fn insert(&mut self, $id: usize) -> bool {
                self.bits.insert($id)
            }

            #[doc = concat!("Removes `", stringify!($id), "`; returns `true` if it was in the mask.")]
            ///
            /// # Examples
            ///
            /// ```
            #[doc = concat!("use stop_machine::", stringify!($T), " as Mask;")]
            ///
            /// let mut mask = Mask::full(2);
            /// assert!(mask.remove(1));
            /// assert!(!mask.remove(1));
            /// assert_eq!(mask, Mask::of(0));
            /// ```
            pub fn remove(&mut self, $id: usize) -> bool {
                self.bits.remove($id)
            }

            #[doc = concat!("Returns whether `", stringify!($id), "` is in the mask.")]
            ///
            /// # Examples
            ///
            /// ```
            #[doc = concat!("use stop_machine::", stringify!($T), " as Mask;")]
            ///
            /// let mask = Mask::full(4);
            /// assert!(mask.contains(3));
            /// assert!(!mask.contains(4));
            /// ```
            pub fn contains(&self, $id: usize) -> bool {
                self.bits.contains($id)
            }

            #[doc = concat!("Removes every ", $one, ".")]
            ///
            /// # Examples
            ///
            /// ```
            #[doc = concat!("use stop_machine::", stringify!($T), " as Mask;")]
            ///
            /// let mut mask = Mask::full(8);
            /// mask.clear();
            /// assert!(mask.is_empty());
            /// ```
            pub fn clear(&mut self) {
                self.bits.clear();
            }

            #[doc = concat!("Returns whether the mask holds no ", $one, ".")]
            ///
            /// # Examples
            ///
            /// ```
            #[doc = concat!("use stop_machine::", stringify!($T), " as Mask;")]
            ///
            /// assert!(Mask::new().is_empty());
            /// assert!(!Mask::of(0).is_empty());
            /// ```
            pub fn is_empty(&self) -> bool {
                self.bits.is_empty()
            }

            #[doc = concat!("Returns the number of ", $many, " in the mask (the kernel's `cpumask_weight`).")]
            ///
            /// # Examples
            ///
            /// ```
            #[doc = concat!("use stop_machine::", stringify!($T), " as Mask;")]
            ///
            /// let mask: Mask = "0-3,100".parse().unwrap();
            /// assert_eq!(mask.weight(), 5);
            /// ```
            pub fn weight(&self) -> usize {
                self.bits.weight()
            }

            #[doc = concat!("Returns the lowest ", $one, " in the mask.")]
            ///
            /// # Examples
            ///
            /// ```
            #[doc = concat!("use stop_machine::", stringify!($T), " as Mask;")]
            ///
            /// let mask: Mask = "7,3,130".parse().unwrap();
            /// assert_eq!(mask.first(), Some(3));
            /// assert_eq!(Mask::new().first(), None);
            /// ```
            pub fn first(&self) -> Option<usize> {
                self.bits.first()
            }

            #[doc = concat!("Returns the highest ", $one, " in the mask.")]
            ///
            /// # Examples
            ///
            /// ```
            #[doc = concat!("use stop_machine::", stringify!($T), " as Mask;")]
            ///
            /// let mask: Mask = "7,3,130".parse().unwrap();
            /// assert_eq!(mask.last(), Some(130));
            /// assert_eq!(Mask::new().last(), None);
            /// ```
            pub fn last(&self) -> Option<usize> {
                self.bits.last()
            }

            #[doc = concat!("Iterates over the ", $many, " in ascending order.")]
            ///
            /// # Examples
            ///
            /// ```
            #[doc = concat!("use stop_machine::", stringify!($T), " as Mask;")]
            ///
            /// let mask: Mask = "9,1-2".parse().unwrap();
            /// assert_eq!(mask.iter().collect::<Vec<_>>(), [1, 2, 9]);
            /// ```
            pub fn iter(&self) -> Iter<'_> {
                self.bits.iter()
            }

            #[doc = concat!("Returns the ", $many, " of `0..n` that are *not* in this mask.")]
            ///
            /// Ids `n` and above are never in the result, whether or not they are
            /// in `self`.
            ///
            /// # Examples
            ///
            /// ```
            #[doc = concat!("use stop_machine::", stringify!($T), " as Mask;")]
            ///
            /// let busy: Mask = "1,3,9".parse().unwrap();
            /// assert_eq!(busy.complement(6).to_string(), "0,2,4-5");
            /// ```
            pub fn complement(&self, n: usize) -> $T {
                $T { bits: self.bits.complement(n) }
            }

            #[doc = concat!("Returns the ", $many, " in either mask (the same as `self | other`).")]
            ///
            /// # Examples
            ///
            /// ```
            #[doc = concat!("use stop_machine::", stringify!($T), " as Mask;")]
            ///
            /// assert_eq!(Mask::of(1).union(&Mask::of(2)).to_string(), "1-2");
            /// ```
            pub fn union(&self, other: &$T) -> $T {
                self | other
            }

            #[doc = concat!("Returns the ", $many, " in both masks (the same as `self & other`).")]
            ///
            /// # Examples
            ///
            /// ```
            #[doc = concat!("use stop_machine::", stringify!($T), " as Mask;")]
            ///
            /// let a = Mask::full(4);
            /// let b: Mask = "2-9".parse().unwrap();
            /// assert_eq!(a.intersection(&b).to_string(), "2-3");
            /// ```
            pub fn intersection(&self, other: &$T) -> $T {
                self & other
            }

            #[doc = concat!("Returns the ", $many, " in `self` but not in `other` (the same as `self - other`).")]
            ///
            /// # Examples
            ///
            /// ```
            #[doc = concat!("use stop_machine::", stringify!($T), " as Mask;")]
            ///
            /// let all = Mask::full(4);
            /// assert_eq!(all.difference(&Mask::of(2)).to_string(), "0-1,3");
            /// ```
            pub fn difference(&self, other: &$T) -> $T {
                self - other
            }

            #[doc = concat!("Returns whether every ", $one, " in `self` is also in `other`.")]
            ///
            /// # Examples
            ///
            /// ```
            #[doc = concat!("use stop_machine::", stringify!($T), " as Mask;")]
            ///
            /// assert!(Mask::of(2).is_subset(&Mask::full(4)));
            /// assert!(!Mask::of(4).is_subset(&Mask::full(4)));
            /// assert!(Mask::new().is_subset(&Mask::new()));
            /// ```
            pub fn is_subset(&self, other: &$T) -> bool {
                self.bits.is_subset(&other.bits)
            }

            #[doc = concat!("Returns whether the two masks have at least one ", $one, " in common.")]
            ///
            /// # Examples
            ///
            /// ```
            #[doc = concat!("use stop_machine::", stringify!($T), " as Mask;")]
            ///
            /// assert!(Mask::full(4).intersects(&Mask::of(3)));
            /// assert!(!Mask::full(4).intersects(&Mask::of(64)));
            /// ```
            pub fn intersects(&self, other: &$T) -> bool {
                self.bits.intersects(&other.bits)
            }
        }
    };
}

for_each_mask!(methods);

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
