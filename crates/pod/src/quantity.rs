//! Kubernetes resource quantities (`100Mi`, `1G`, `0.5`, `500m`, `129e6`, `1.5Gi`).
//!
//! Grammar and rounding follow apimachinery `resource.ParseQuantity` and
//! `Quantity.Value()` / `MilliValue()`: a signed decimal number followed by a
//! binary-SI suffix (`Ki Mi Gi Ti Pi Ei`), a decimal-SI suffix
//! (`n u m "" k M G T P E`) or a decimal exponent (`e3`, `E-2`). Integer
//! conversions round *up* (towards +infinity), as kubelet does.
//!
//! Values are kept exact as `numerator / 10^scale` with a `u128` numerator.

use std::cmp::Ordering;
use std::fmt;

/// Why a quantity string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    /// Does not match the quantity grammar (apimachinery's `ErrFormatWrong`).
    #[error("quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")]
    Format,
    /// The suffix is not one Kubernetes knows (apimachinery's `ErrSuffix`).
    #[error("unable to parse quantity's suffix")]
    Suffix,
    /// Too large to represent exactly.
    #[error("quantity is too large")]
    TooLarge,
    /// A negative value where only non-negative amounts make sense.
    #[error("must be greater than or equal to 0")]
    Negative,
}

/// An exactly parsed quantity: `(-1)^negative * numerator / 10^scale`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quantity {
    negative: bool,
    numerator: u128,
    scale: u32,
}

/// Largest power of ten kept in the denominator; beyond it a non-zero value
/// is below 1e-38 and only its sign matters for rounding up.
const MAX_SCALE: u32 = 38;

fn pow10(e: u32) -> Option<u128> {
    10u128.checked_pow(e)
}

impl Quantity {
    /// Parses a quantity string exactly as `resource.ParseQuantity` accepts it.
    pub fn parse(input: &str) -> Result<Quantity, QuantityError> {
        let s = input.trim();
        if s.is_empty() {
            return Err(QuantityError::Format);
        }
        let bytes = s.as_bytes();
        let mut i = 0;
        let mut negative = false;
        if bytes[0] == b'+' || bytes[0] == b'-' {
            negative = bytes[0] == b'-';
            i = 1;
        }
        // Number: digits, optional '.', digits; at least one digit overall.
        let mut mantissa: u128 = 0;
        let mut frac_digits: u32 = 0;
        let mut seen_digit = false;
        let mut seen_dot = false;
        let mut overflow_digits: u32 = 0; // non-zero fraction digits beyond u128
        while i < bytes.len() {
            let c = bytes[i];
            if c.is_ascii_digit() {
                seen_digit = true;
                match mantissa
                    .checked_mul(10)
                    .and_then(|m| m.checked_add(u128::from(c - b'0')))
                {
                    Some(m) => {
                        mantissa = m;
                        if seen_dot {
                            frac_digits += 1;
                        }
                    }
                    None => {
                        if seen_dot {
                            // Extra fractional precision beyond u128: drop it,
                            // but remember it was non-zero for rounding up.
                            if c != b'0' {
                                overflow_digits += 1;
                            }
                        } else {
                            return Err(QuantityError::TooLarge);
                        }
                    }
                }
            } else if c == b'.' {
                if seen_dot {
                    return Err(QuantityError::Format);
                }
                seen_dot = true;
            } else {
                break;
            }
            i += 1;
        }
        if !seen_digit {
            return Err(QuantityError::Format);
        }
        if overflow_digits > 0 {
            // Round the truncated fraction up by one unit in the last place
            // kept: the value is only ever used rounded up.
            mantissa = mantissa.checked_add(1).ok_or(QuantityError::TooLarge)?;
        }
        let suffix = &s[i..];
        let (mul10, div10, mul2): (u32, u32, u32) = match suffix {
            "" => (0, 0, 0),
            "n" => (0, 9, 0),
            "u" => (0, 6, 0),
            "m" => (0, 3, 0),
            "k" => (3, 0, 0),
            "M" => (6, 0, 0),
            "G" => (9, 0, 0),
            "T" => (12, 0, 0),
            "P" => (15, 0, 0),
            "E" => (18, 0, 0),
            "Ki" => (0, 0, 10),
            "Mi" => (0, 0, 20),
            "Gi" => (0, 0, 30),
            "Ti" => (0, 0, 40),
            "Pi" => (0, 0, 50),
            "Ei" => (0, 0, 60),
            other => {
                let rest = other
                    .strip_prefix('e')
                    .or_else(|| other.strip_prefix('E'))
                    .ok_or_else(|| {
                        if other
                            .bytes()
                            .all(|b| b"eEinumkKMGTP+-0123456789".contains(&b))
                        {
                            QuantityError::Suffix
                        } else {
                            QuantityError::Format
                        }
                    })?;
                let (neg, digits) = match rest.as_bytes().first() {
                    Some(b'-') => (true, &rest[1..]),
                    Some(b'+') => (false, &rest[1..]),
                    _ => (false, rest),
                };
                if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(QuantityError::Suffix);
                }
                let e: u32 = digits.parse().map_err(|_| QuantityError::TooLarge)?;
                if neg {
                    (0, e, 0)
                } else {
                    (e, 0, 0)
                }
            }
        };
        let mut numerator = mantissa;
        if numerator != 0 {
            numerator = pow10(mul10)
                .and_then(|p| numerator.checked_mul(p))
                .and_then(|n| n.checked_mul(1u128.checked_shl(mul2)?))
                .ok_or(QuantityError::TooLarge)?;
        }
        let mut scale = frac_digits.saturating_add(div10);
        if scale > MAX_SCALE {
            // Divide the numerator down, rounding up, to keep scale bounded.
            let excess = scale - MAX_SCALE;
            numerator = match pow10(excess) {
                Some(p) => numerator.div_ceil(p),
                None => u128::from(numerator != 0),
            };
            scale = MAX_SCALE;
        }
        Ok(Quantity {
            negative: negative && numerator != 0,
            numerator,
            scale,
        })
    }

    /// True for a value below zero.
    pub fn is_negative(&self) -> bool {
        self.negative
    }

    /// True for exactly zero.
    pub fn is_zero(&self) -> bool {
        self.numerator == 0
    }

    /// `ceil(value * 10^extra)` as u128 (non-negative values only).
    fn scaled_ceil(&self, extra: u32) -> Result<u128, QuantityError> {
        if self.negative {
            return Err(QuantityError::Negative);
        }
        if extra >= self.scale {
            let p = pow10(extra - self.scale).ok_or(QuantityError::TooLarge)?;
            self.numerator.checked_mul(p).ok_or(QuantityError::TooLarge)
        } else {
            let p = pow10(self.scale - extra).ok_or(QuantityError::TooLarge)?;
            Ok(self.numerator.div_ceil(p))
        }
    }

    /// `Value()`: the integer value rounded up (bytes for memory).
    pub fn value_ceil(&self) -> Result<u64, QuantityError> {
        u64::try_from(self.scaled_ceil(0)?).map_err(|_| QuantityError::TooLarge)
    }

    /// `MilliValue()`: the value in thousandths rounded up (millicores for cpu).
    pub fn milli_value_ceil(&self) -> Result<u64, QuantityError> {
        u64::try_from(self.scaled_ceil(3)?).map_err(|_| QuantityError::TooLarge)
    }

    /// Exact comparison of two quantities.
    pub fn cmp_exact(&self, other: &Quantity) -> Ordering {
        match (self.negative, other.negative) {
            (false, true) => return Ordering::Greater,
            (true, false) => return Ordering::Less,
            _ => {}
        }
        let magnitude = {
            // Bring both to the larger scale; on overflow fall back to f64.
            let s = self.scale.max(other.scale);
            let a = pow10(s - self.scale).and_then(|p| self.numerator.checked_mul(p));
            let b = pow10(s - other.scale).and_then(|p| other.numerator.checked_mul(p));
            match (a, b) {
                (Some(a), Some(b)) => a.cmp(&b),
                _ => self
                    .as_f64_abs()
                    .partial_cmp(&other.as_f64_abs())
                    .unwrap_or(Ordering::Equal),
            }
        };
        if self.negative {
            magnitude.reverse()
        } else {
            magnitude
        }
    }

    fn as_f64_abs(&self) -> f64 {
        self.numerator as f64 / 10f64.powi(self.scale as i32)
    }
}

impl fmt::Display for Quantity {
    /// Plain decimal rendering (`1.5`, `0.001`, `1073741824`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digits = self.numerator.to_string();
        let scale = self.scale as usize;
        let sign = if self.negative { "-" } else { "" };
        if scale == 0 {
            return write!(f, "{sign}{digits}");
        }
        let padded = if digits.len() <= scale {
            format!("{}{}", "0".repeat(scale - digits.len() + 1), digits)
        } else {
            digits
        };
        let (int, frac) = padded.split_at(padded.len() - scale);
        let frac = frac.trim_end_matches('0');
        if frac.is_empty() {
            write!(f, "{sign}{int}")
        } else {
            write!(f, "{sign}{int}.{frac}")
        }
    }
}

/// Memory quantity → bytes, rounded up like kubelet (`Quantity.Value()`).
pub fn parse_memory_bytes(s: &str) -> Result<u64, QuantityError> {
    let q = Quantity::parse(s)?;
    if q.is_negative() {
        return Err(QuantityError::Negative);
    }
    q.value_ceil()
}

/// CPU quantity → millicores, rounded up like kubelet (`Quantity.MilliValue()`).
pub fn parse_cpu_millis(s: &str) -> Result<u64, QuantityError> {
    let q = Quantity::parse(s)?;
    if q.is_negative() {
        return Err(QuantityError::Negative);
    }
    q.milli_value_ceil()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_examples() {
        assert_eq!(parse_memory_bytes("100Mi"), Ok(100 * 1024 * 1024));
        assert_eq!(parse_memory_bytes("1G"), Ok(1_000_000_000));
        assert_eq!(parse_memory_bytes("129e6"), Ok(129_000_000));
        assert_eq!(parse_memory_bytes("129M"), Ok(129_000_000));
        assert_eq!(parse_memory_bytes("1.5Gi"), Ok(1_610_612_736));
        assert_eq!(parse_memory_bytes("12345"), Ok(12345));
        assert_eq!(parse_memory_bytes("1Ki"), Ok(1024));
        assert_eq!(parse_memory_bytes("1Ei"), Ok(1 << 60));
        assert_eq!(parse_memory_bytes("0"), Ok(0));
        assert_eq!(parse_memory_bytes("+5k"), Ok(5000));
    }

    #[test]
    fn memory_rounds_up() {
        assert_eq!(parse_memory_bytes("0.5"), Ok(1));
        assert_eq!(parse_memory_bytes("1500m"), Ok(2));
        assert_eq!(parse_memory_bytes("1n"), Ok(1));
        assert_eq!(parse_memory_bytes("1e-50"), Ok(1));
        assert_eq!(parse_memory_bytes("0.0000"), Ok(0));
        assert_eq!(parse_memory_bytes("1.0000000001Ki"), Ok(1025));
    }

    #[test]
    fn cpu_examples() {
        assert_eq!(parse_cpu_millis("500m"), Ok(500));
        assert_eq!(parse_cpu_millis("0.5"), Ok(500));
        assert_eq!(parse_cpu_millis("1"), Ok(1000));
        assert_eq!(parse_cpu_millis("2.25"), Ok(2250));
        assert_eq!(parse_cpu_millis("100u"), Ok(1));
        assert_eq!(parse_cpu_millis("0.0001"), Ok(1));
        assert_eq!(parse_cpu_millis("1e3"), Ok(1_000_000));
        assert_eq!(parse_cpu_millis(".5"), Ok(500));
        assert_eq!(parse_cpu_millis("1."), Ok(1000));
    }

    #[test]
    fn garbage_is_rejected() {
        for bad in [
            "", "abc", "1GB", "1 Gi", "1..2", "--1", "Mi", ".", "1Gi2", "1e", "1ee3",
        ] {
            assert!(Quantity::parse(bad).is_err(), "{bad:?} should fail");
        }
        assert_eq!(Quantity::parse("1Qi"), Err(QuantityError::Format));
        assert_eq!(Quantity::parse("1MM"), Err(QuantityError::Suffix));
        assert_eq!(parse_memory_bytes("-1"), Err(QuantityError::Negative));
        assert_eq!(
            parse_memory_bytes("99999999E"),
            Err(QuantityError::TooLarge)
        );
        assert_eq!(
            parse_memory_bytes("1GB").unwrap_err().to_string(),
            "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
        );
    }

    #[test]
    fn exact_comparison() {
        let q = |s| Quantity::parse(s).unwrap();
        assert_eq!(q("1").cmp_exact(&q("1000m")), Ordering::Equal);
        assert_eq!(q("1Gi").cmp_exact(&q("1G")), Ordering::Greater);
        assert_eq!(q("500m").cmp_exact(&q("0.5")), Ordering::Equal);
        assert_eq!(q("-1").cmp_exact(&q("0")), Ordering::Less);
        assert_eq!(q("-2").cmp_exact(&q("-1")), Ordering::Less);
        assert_eq!(q("1e-3").cmp_exact(&q("1m")), Ordering::Equal);
        assert_eq!(q("-0").cmp_exact(&q("0")), Ordering::Equal);
    }

    #[test]
    fn display_is_plain_decimal() {
        let q = |s| Quantity::parse(s).unwrap().to_string();
        assert_eq!(q("500m"), "0.5");
        assert_eq!(q("1.5Gi"), "1610612736");
        assert_eq!(q("1m"), "0.001");
        assert_eq!(q("-2.50"), "-2.5");
        assert_eq!(q("7"), "7");
    }
}
