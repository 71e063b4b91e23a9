//! Connection admission for the HTTP front end: a cap on all open connections together and a
//! smaller cap per client address.
//!
//! The accept loop never waits for a free slot: it accepts every connection and asks
//! [`ConnectionLimits::admit`] right away. A connection over either cap gets a best-effort
//! `503`/`429` and is closed at once, so clients that hold connections open without finishing a
//! request (slowloris) can only fill their own address's share and never keep another client from
//! being served. IPv4-mapped IPv6 addresses count as the IPv4 address they carry.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Arc, Mutex, PoisonError},
};

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Every slot of the server is taken.
    Global,
    /// This client address already has its maximum of open connections.
    PerIp,
}

impl Refusal {
    /// The answer written (without waiting) to a refused connection before it is closed.
    pub fn answer(self) -> &'static [u8] {
        match self {
            Refusal::Global => {
                b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            }
            Refusal::PerIp => {
                b"HTTP/1.1 429 Too Many Requests\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            }
        }
    }
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

/// Open-connection counters shared by the accept loop and the connection tasks.
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    max_total: usize,
    max_per_ip: usize,
    counts: Arc<Mutex<Counts>>,
}

impl ConnectionLimits {
    /// Limits of `max_total` connections in all and `max_per_ip` from one address (both at least 1).
    pub fn new(max_total: usize, max_per_ip: usize) -> Self {
        ConnectionLimits {
            max_total: max_total.max(1),
            max_per_ip: max_per_ip.max(1),
            counts: Arc::default(),
        }
    }

    /// Admits a connection from `ip`, or says why not. The slot is held until the returned
    /// [`Admission`] is dropped.
    pub fn admit(&self, ip: IpAddr) -> Result<Admission, Refusal> {
        let ip = ip.to_canonical();
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        if counts.total >= self.max_total {
            return Err(Refusal::Global);
        }
        let mine = counts.per_ip.entry(ip).or_insert(0);
        if *mine >= self.max_per_ip {
            return Err(Refusal::PerIp);
        }
        *mine += 1;
        counts.total += 1;
        Ok(Admission {
            ip,
            counts: Arc::clone(&self.counts),
        })
    }

    /// Connections open now, all addresses together.
    pub fn open(&self) -> usize {
        self.counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .total
    }
}

/// One admitted connection's slot; dropping it frees the slot.
#[derive(Debug)]
pub struct Admission {
    ip: IpAddr,
    counts: Arc<Mutex<Counts>>,
}

impl Drop for Admission {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        counts.total = counts.total.saturating_sub(1);
        if let Some(n) = counts.per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                counts.per_ip.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn one_address_cannot_take_the_slots_of_others() {
        let limits = ConnectionLimits::new(10, 3);
        let held: Vec<_> = (0..3)
            .map(|_| limits.admit(ip("127.0.0.2")).unwrap())
            .collect();
        assert_eq!(limits.admit(ip("127.0.0.2")).unwrap_err(), Refusal::PerIp);
        // the mapped form is the same client
        assert_eq!(
            limits.admit(ip("::ffff:127.0.0.2")).unwrap_err(),
            Refusal::PerIp
        );
        let other = limits.admit(ip("127.0.0.1")).unwrap();
        assert_eq!(limits.open(), 4);
        drop(held);
        drop(other);
        assert_eq!(limits.open(), 0);
        assert!(limits.counts.lock().unwrap().per_ip.is_empty());
        assert!(limits.admit(ip("127.0.0.2")).is_ok());
    }

    #[test]
    fn the_global_cap_holds_across_addresses() {
        let limits = ConnectionLimits::new(2, 2);
        let _a = limits.admit(ip("10.0.0.1")).unwrap();
        let b = limits.admit(ip("10.0.0.2")).unwrap();
        assert_eq!(limits.admit(ip("10.0.0.3")).unwrap_err(), Refusal::Global);
        drop(b);
        assert!(limits.admit(ip("10.0.0.3")).is_ok());
    }
}
