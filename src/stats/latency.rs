//! A latency histogram over hdrhistogram.

use hdrhistogram::Histogram;
use std::fmt;
use std::time::Duration;

/// A latency histogram: every duration from 1 ns to one hour
/// ([`Latency::MAX`]) with 3 significant digits.
///
/// A value reads back at most 0.1 % above what was recorded (the upper end
/// of its bucket), never below it, so a latency bound checked against
/// [`p50`](Latency::p50), [`p99`](Latency::p99) or [`max`](Latency::max)
/// holds for the value itself. `quantile(0.0)` is the exception: it reads
/// the lower end of the smallest value's bucket. Zero is recorded as 1 ns
/// and anything above an hour as an hour.
///
/// Memory grows with the largest value recorded, not with the count: 16 KiB
/// while every value is under 2 µs, 64 KiB up to 131 µs, 112 KiB up to
/// 8.4 ms, and at most 264 KiB (an hour).
///
/// # Examples
///
/// ```
/// let rt = stop_machine::Runtime::builder().workers(2).pin(false).build().unwrap();
/// rt.handle().stop_machine_blocking(|_| (), None).unwrap();
/// let stats = rt.handle().stats();
/// let stopped = &stats.kind(stop_machine::StopKind::Machine).time_stopped;
/// assert_eq!(stopped.count(), 1);
/// assert!(stopped.p99() >= stopped.p50());
/// ```
#[derive(Clone)]
pub struct Latency {
    hist: Histogram<u64>,
}

impl Latency {
    /// The largest duration recorded as itself; longer ones are recorded as
    /// this (and stay counted).
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(stop_machine::Latency::MAX, std::time::Duration::from_secs(3600));
    /// ```
    pub const MAX: Duration = Duration::from_secs(3600);

    /// [`Latency::MAX`] in nanoseconds.
    const MAX_NS: u64 = Latency::MAX.as_secs() * 1_000_000_000;

    pub(super) fn new() -> Latency {
        // Auto-resizing from 1 ns: the counts grow to cover the largest
        // value recorded (up to `MAX_NS`), instead of holding the whole
        // hour's range from the start.
        Latency {
            hist: Histogram::new(3).expect("invariant: 3 significant digits is valid"),
        }
    }

    pub(super) fn record(&mut self, d: Duration) {
        let ns = u64::try_from(d.as_nanos())
            .unwrap_or(u64::MAX)
            .clamp(1, Latency::MAX_NS);
        // `record` grows the histogram to `ns`; `saturating_record` would
        // clamp to the current top instead (a fresh histogram's is 2 ns).
        // Growing to an hour cannot fail (it needs 33,792 counters), but
        // if it did, clamping is better than losing the sample.
        if self.hist.record(ns).is_err() {
            self.hist.saturating_record(ns);
        }
    }

    /// How many values were recorded.
    ///
    /// # Examples
    ///
    /// See [`Latency`].
    pub fn count(&self) -> u64 {
        self.hist.len()
    }

    /// The value at quantile `q` (0.0 to 1.0); zero when empty.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = stop_machine::Runtime::builder().workers(1).pin(false).build().unwrap();
    /// let stats = rt.handle().stats();
    /// assert_eq!(stats.kind(stop_machine::StopKind::One).time_to_stop.quantile(0.5), std::time::Duration::ZERO);
    /// ```
    pub fn quantile(&self, q: f64) -> Duration {
        Duration::from_nanos(self.hist.value_at_quantile(q))
    }

    /// The median.
    ///
    /// # Examples
    ///
    /// See [`Latency`].
    pub fn p50(&self) -> Duration {
        self.quantile(0.5)
    }

    /// The 99th percentile.
    ///
    /// # Examples
    ///
    /// See [`Latency`].
    pub fn p99(&self) -> Duration {
        self.quantile(0.99)
    }

    /// The largest value.
    ///
    /// # Examples
    ///
    /// See [`Latency`].
    pub fn max(&self) -> Duration {
        Duration::from_nanos(self.hist.max())
    }
}

impl fmt::Debug for Latency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Latency")
            .field("count", &self.count())
            .field("p50", &self.p50())
            .field("p99", &self.p99())
            .field("max", &self.max())
            .finish()
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(crate) fn ns(d: Duration) -> f64 {
        d.as_nanos() as f64
    }

    /// Whether `read` is `value` or at most 0.1 % above it.
    pub(crate) fn close(read: Duration, value: Duration) -> bool {
        read >= value && ns(read) <= ns(value) * 1.001
    }

    const VALUES: [Duration; 5] = [
        Duration::from_nanos(1),
        Duration::from_micros(1),
        Duration::from_millis(1),
        Duration::from_secs(1),
        Duration::from_secs(600),
    ];

    #[test]
    fn every_value_from_a_nanosecond_to_ten_minutes_reads_back_within_a_tenth_of_a_percent() {
        for value in VALUES {
            let mut l = Latency::new();
            l.record(value);
            assert_eq!(l.count(), 1);
            for read in [l.p50(), l.p99(), l.max(), l.quantile(1.0)] {
                assert!(close(read, value), "{value:?} read back as {read:?}");
            }
        }
        // All in one histogram, in either order: the midpoint of each fifth
        // is one of the values.
        for order in [VALUES, {
            let mut v = VALUES;
            v.reverse();
            v
        }] {
            let mut l = Latency::new();
            for value in order {
                l.record(value);
            }
            assert_eq!(l.count(), 5);
            for (i, value) in VALUES.iter().enumerate() {
                let read = l.quantile((2 * i + 1) as f64 / 10.0);
                assert!(close(read, *value), "{value:?} read back as {read:?}");
            }
            assert!(close(l.max(), Duration::from_secs(600)));
        }
    }

    #[test]
    fn the_reported_load_is_no_longer_clamped_to_two_nanoseconds() {
        // 2,000 stops of 70 us to 6 ms read "2ns/2ns/2ns" before.
        let value = |i: u64| Duration::from_micros(70 + i * (6000 - 70) / 1999);
        let mut l = Latency::new();
        for i in 0..2000 {
            l.record(value(i));
        }
        assert_eq!(l.count(), 2000);
        // The 1,000th, 1,980th and 2,000th smallest.
        assert!(close(l.p50(), value(999)), "{:?}", l.p50());
        assert!(close(l.p99(), value(1979)), "{:?}", l.p99());
        assert!(close(l.max(), Duration::from_millis(6)), "{:?}", l.max());
    }

    #[test]
    fn zero_reads_as_a_nanosecond_and_beyond_an_hour_as_an_hour() {
        let mut l = Latency::new();
        l.record(Duration::ZERO);
        assert_eq!(l.max(), Duration::from_nanos(1));
        l.record(Duration::from_secs(7200));
        l.record(Duration::MAX);
        assert_eq!(l.count(), 3);
        assert!(close(l.max(), Latency::MAX), "{:?}", l.max());
        assert!(close(l.quantile(0.5), Latency::MAX));
    }

    #[test]
    fn memory_grows_with_the_largest_value_up_to_264_kib() {
        let bytes = |l: &Latency| l.hist.distinct_values() * std::mem::size_of::<u64>();
        let mut l = Latency::new();
        assert_eq!(bytes(&l), 16 << 10);
        for (value, kib) in [
            (Duration::from_nanos(2047), 16),
            (Duration::from_micros(131), 64),
            (Duration::from_micros(8388), 112),
            (Latency::MAX, 264),
            (Duration::MAX, 264),
        ] {
            l.record(value);
            assert_eq!(bytes(&l), kib << 10, "after {value:?}");
        }
        l.record(Duration::from_nanos(1));
        assert_eq!(bytes(&l), 264 << 10, "it does not shrink");
    }
}
