//! Connection admission for the HTTP front end: a cap on all open connections together and a
//! smaller cap per client address, with fair eviction when the server is full.
//!
//! The accept loop never waits for a free slot: it accepts every connection and asks
//! [`ConnectionLimits::admit`] right away. A connection over its address's cap gets a best-effort
//! `429` and is closed at once, so clients that hold connections open without finishing a request
//! (slowloris) can only fill their own address's share. When every slot is taken, a newcomer is
//! not turned away while another address holds more: the oldest connection of the address that
//! holds the most is closed to make room (and a loopback client, a local probe, may always take a
//! slot from a remote address). So slow clients from many addresses cannot crowd out `/health`
//! for a load balancer, the Azure Application Health extension or a new client; only when every
//! address holds about as few as the newcomer would is it answered `503`. IPv4-mapped IPv6
//! addresses count as the IPv4 address they carry.

use std::{
    collections::{HashMap, VecDeque},
    net::IpAddr,
    sync::{Arc, Mutex, PoisonError},
};

use tokio_util::sync::CancellationToken;

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Every slot of the server is taken, and no address holds more than this one would.
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

/// One open connection: its id and the signal that closes it when it is evicted.
#[derive(Debug)]
struct Slot {
    id: u64,
    evict: CancellationToken,
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    next_id: u64,
    /// Each address's open connections, oldest first.
    per_ip: HashMap<IpAddr, VecDeque<Slot>>,
}

impl Counts {
    /// Closes the oldest connection of the address holding the most, if that is fair to a
    /// newcomer from `ip` holding `mine`; returns whether a slot was freed.
    fn evict_for(&mut self, ip: IpAddr, mine: usize) -> bool {
        let Some((&victim, held)) = self
            .per_ip
            .iter()
            .filter(|(other, _)| **other != ip)
            .max_by_key(|(other, slots)| (slots.len(), !other.is_loopback()))
        else {
            return false;
        };
        let fair = held.len() > mine + 1 || (ip.is_loopback() && !victim.is_loopback());
        if !fair {
            return false;
        }
        let slots = self
            .per_ip
            .get_mut(&victim)
            .expect("the address just found");
        if let Some(slot) = slots.pop_front() {
            slot.evict.cancel();
            self.total = self.total.saturating_sub(1);
        }
        if slots.is_empty() {
            self.per_ip.remove(&victim);
        }
        true
    }
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

    /// Admits a connection from `ip` (closing another address's oldest one when the server is
    /// full and that is fair), or says why not. The slot is held until the returned
    /// [`Admission`] is dropped, or until [`Admission::evicted`] fires.
    pub fn admit(&self, ip: IpAddr) -> Result<Admission, Refusal> {
        let ip = ip.to_canonical();
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let mine = counts.per_ip.get(&ip).map_or(0, VecDeque::len);
        if mine >= self.max_per_ip {
            return Err(Refusal::PerIp);
        }
        if counts.total >= self.max_total && !counts.evict_for(ip, mine) {
            return Err(Refusal::Global);
        }
        let id = counts.next_id;
        counts.next_id += 1;
        let evict = CancellationToken::new();
        counts.per_ip.entry(ip).or_default().push_back(Slot {
            id,
            evict: evict.clone(),
        });
        counts.total += 1;
        Ok(Admission {
            ip,
            id,
            evict,
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
    id: u64,
    evict: CancellationToken,
    counts: Arc<Mutex<Counts>>,
}

impl Admission {
    /// Fires when the connection was closed to make room for another address's.
    pub fn evicted(&self) -> CancellationToken {
        self.evict.clone()
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(slots) = counts.per_ip.get_mut(&self.ip) else {
            return;
        };
        // An evicted slot was already given back.
        let Some(at) = slots.iter().position(|s| s.id == self.id) else {
            return;
        };
        slots.remove(at);
        if slots.is_empty() {
            counts.per_ip.remove(&self.ip);
        }
        counts.total = counts.total.saturating_sub(1);
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
    fn the_global_cap_holds_across_addresses_that_hold_as_little() {
        let limits = ConnectionLimits::new(2, 2);
        let _a = limits.admit(ip("10.0.0.1")).unwrap();
        let b = limits.admit(ip("10.0.0.2")).unwrap();
        assert_eq!(limits.admit(ip("10.0.0.3")).unwrap_err(), Refusal::Global);
        drop(b);
        assert!(limits.admit(ip("10.0.0.3")).is_ok());
    }

    #[test]
    fn a_full_server_closes_the_oldest_connection_of_the_heaviest_address() {
        let limits = ConnectionLimits::new(5, 4);
        let heavy: Vec<_> = (0..4)
            .map(|_| limits.admit(ip("10.0.0.1")).unwrap())
            .collect();
        let light = limits.admit(ip("10.0.0.2")).unwrap();
        let newcomer = limits.admit(ip("10.0.0.3")).unwrap();
        assert!(
            heavy[0].evicted().is_cancelled(),
            "the oldest of the heaviest"
        );
        assert!(heavy[1..].iter().all(|a| !a.evicted().is_cancelled()));
        assert!(!light.evicted().is_cancelled());
        assert_eq!(limits.open(), 5);
        // the evicted slot's drop gives back nothing twice
        drop(heavy);
        assert_eq!(limits.open(), 2);
        drop((light, newcomer));
        assert_eq!(limits.open(), 0);
        assert!(limits.counts.lock().unwrap().per_ip.is_empty());
    }

    #[test]
    fn loopback_may_always_take_a_remote_slot() {
        let limits = ConnectionLimits::new(2, 2);
        let a = limits.admit(ip("10.0.0.1")).unwrap();
        let b = limits.admit(ip("10.0.0.2")).unwrap();
        let local = limits.admit(ip("127.0.0.1")).unwrap();
        assert!(a.evicted().is_cancelled() || b.evicted().is_cancelled());
        // but a remote newcomer does not take a loopback slot from equals
        assert_eq!(limits.admit(ip("10.0.0.9")).unwrap_err(), Refusal::Global);
        assert!(!local.evicted().is_cancelled());
    }
}
