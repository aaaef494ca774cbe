//! The set operators of both masks: `|`, `&`, `^` and `-`, and their
//! assigning forms, on owned masks and references alike. Both operands are
//! always of the same type: a [`CpuMask`] and a [`WorkerMask`] do not combine.

use std::ops::{BitAnd, BitAndAssign, BitOr, BitOrAssign, BitXor, BitXorAssign, Sub, SubAssign};

use super::{CpuMask, WorkerMask};

/// One operator on `$T`, for every mix of owned and borrowed operands.
/// `$grow`: whether `$combine` can set bits that only `rhs` has.
macro_rules! binop {
    ($T:ident, $Op:ident, $op:ident, $OpAssign:ident, $op_assign:ident, $combine:expr, $grow:expr) => {
        impl $OpAssign<&$T> for $T {
            fn $op_assign(&mut self, rhs: &$T) {
                self.bits.combine(&rhs.bits, $combine, $grow);
            }
        }

        impl $OpAssign<$T> for $T {
            fn $op_assign(&mut self, rhs: $T) {
                self.$op_assign(&rhs);
            }
        }

        impl $Op<&$T> for &$T {
            type Output = $T;

            fn $op(self, rhs: &$T) -> $T {
                let mut out = self.clone();
                out.$op_assign(rhs);
                out
            }
        }

        impl $Op<$T> for $T {
            type Output = $T;

            fn $op(mut self, rhs: $T) -> $T {
                self.$op_assign(&rhs);
                self
            }
        }

        impl $Op<&$T> for $T {
            type Output = $T;

            fn $op(mut self, rhs: &$T) -> $T {
                self.$op_assign(rhs);
                self
            }
        }

        impl $Op<$T> for &$T {
            type Output = $T;

            fn $op(self, rhs: $T) -> $T {
                let mut out = self.clone();
                out.$op_assign(&rhs);
                out
            }
        }
    };
}

/// The four set operators of a mask type.
macro_rules! set_ops {
    ($T:ident, $id:ident, $one:literal, $many:literal) => {
        binop!(
            $T,
            BitOr,
            bitor,
            BitOrAssign,
            bitor_assign,
            |a, b| a | b,
            true
        );
        binop!(
            $T,
            BitAnd,
            bitand,
            BitAndAssign,
            bitand_assign,
            |a, b| a & b,
            false
        );
        binop!(
            $T,
            BitXor,
            bitxor,
            BitXorAssign,
            bitxor_assign,
            |a, b| a ^ b,
            true
        );
        binop!($T, Sub, sub, SubAssign, sub_assign, |a, b| a & !b, false);
    };
}

for_each_mask!(set_ops);

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
