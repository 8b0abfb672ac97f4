//! A token bucket per client address for the requests that test a credential.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

pub(crate) struct RateLimiter {
    per_second: f64,
    burst: f64,
    buckets: Mutex<HashMap<Option<IpAddr>, Bucket>>,
}

struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// Buckets beyond this many addresses are pruned of the full ones.
const MAX_TRACKED: usize = 10_000;

impl RateLimiter {
    pub(crate) fn new(per_minute: u32, burst: u32) -> Self {
        Self {
            per_second: f64::from(per_minute) / 60.0,
            burst: f64::from(burst),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token for `ip`; `Err(seconds)` says when the next one is available.
    pub(crate) fn check(&self, ip: Option<IpAddr>) -> Result<(), u64> {
        self.check_at(ip, Instant::now())
    }

    /// Gives back the token of a request that turned out not to be a guess.
    pub(crate) fn refund(&self, ip: Option<IpAddr>) {
        let mut buckets = crate::locks::lock(&self.buckets);
        if let Some(b) = buckets.get_mut(&ip) {
            b.tokens = (b.tokens + 1.0).min(self.burst);
        }
    }

    fn check_at(&self, ip: Option<IpAddr>, now: Instant) -> Result<(), u64> {
        let mut buckets = crate::locks::lock(&self.buckets);
        if buckets.len() > MAX_TRACKED {
            let (rate, burst) = (self.per_second, self.burst);
            buckets.retain(|_, b| {
                b.tokens + now.duration_since(b.updated).as_secs_f64() * rate < burst
            });
        }
        let bucket = buckets.entry(ip).or_insert(Bucket {
            tokens: self.burst,
            updated: now,
        });
        let elapsed = now.duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.per_second).min(self.burst);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - bucket.tokens) / self.per_second;
            Err(wait.ceil().max(1.0) as u64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn burst_then_steady_rate_per_address() {
        let limiter = RateLimiter::new(10, 5);
        let a = Some(IpAddr::from([10, 0, 0, 1]));
        let b = Some(IpAddr::from([10, 0, 0, 2]));
        let t0 = Instant::now();
        for _ in 0..5 {
            assert!(limiter.check_at(a, t0).is_ok());
        }
        assert_eq!(limiter.check_at(a, t0), Err(6));
        // Another address has its own bucket.
        assert!(limiter.check_at(b, t0).is_ok());
        // 10 per minute: one token every 6 s.
        assert!(limiter.check_at(a, t0 + Duration::from_secs(6)).is_ok());
        assert!(limiter.check_at(a, t0 + Duration::from_secs(7)).is_err());
        // A refunded token (a sign-in that succeeded) can be taken again.
        limiter.refund(a);
        assert!(limiter.check_at(a, t0 + Duration::from_secs(7)).is_ok());
    }
}
