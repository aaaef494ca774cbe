//! The set operators of [`CpuMask`]: `|`, `&`, `^` and `-`, and their
//! assigning forms, on owned masks and references alike.

use std::ops::{BitAnd, BitAndAssign, BitOr, BitOrAssign, BitXor, BitXorAssign, Sub, SubAssign};

use super::CpuMask;

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

#[cfg(test)]
mod tests {
    use super::*;

    fn m(s: &str) -> CpuMask {
        s.parse().unwrap()
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
}
