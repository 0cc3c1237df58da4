//! The built-in model: the simulated agents' work and demand, as plain functions of the
//! scenario, the agent's id and the tick (the scenario's `[behaviour]` and `[workload]`
//! sections). It is the [`AgentWorkload`] that [`run`](crate::run) and distributed runs
//! simulate: the runtime's agents and the baseline loop call the same code, and a restarted
//! agent behaves exactly as the one it replaces.

use qorch_protocol::{AgentId, Priority};
use qorch_resources::{PoolFilter, ResourceRequest, ResourceVector};

use crate::scenario::{Pattern, Scenario, home_leaf, home_range};
use crate::workload::{AgentWorkload, Task, burn};

/// `SplitMix64`'s finalizer: a well-mixed hash of a 64-bit value (the workspace's one copy,
/// in `qorch-qubo`).
pub(crate) use qorch_qubo::splitmix64 as mix;

/// What an agent does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Kind {
    /// Cpu-heavy, heavy ticks, one message per tick.
    Compute,
    /// Bandwidth-heavy, six messages per tick.
    Chatty,
    /// Small, a message every fifth tick on average.
    Idle,
}

/// Everything needed to build any agent's model from its id: the scenario's numbers and the
/// layout of agents over leaves (agents are spread evenly over the leaves, in id order).
#[derive(Debug, Clone)]
pub(crate) struct ModelSpec {
    seed: u64,
    agents: u32,
    leaves: u32,
    kinds: usize,
    behaviour: [f64; 3],
    pattern: [f64; 4],
    message_work: u32,
    tick_work: u32,
    partners: usize,
    locality: f64,
    noise: f64,
    period: f64,
    amplitude: f64,
    burst_probability: f64,
    burst_factor: f64,
    burst_ticks: u64,
    trend: f64,
    phase_spread: f64,
}

/// One agent's fixed traits.
#[derive(Debug, Clone)]
pub(crate) struct AgentModel {
    pub(crate) id: u32,
    pub(crate) kind: Kind,
    pub(crate) pattern: Pattern,
    /// Desired demand at multiplier 1.
    base: Vec<f64>,
    weight: f64,
    min_fraction: f64,
    phase: f64,
    trend_sign: f64,
    pub(crate) peers: Vec<u32>,
}

/// A uniform number in `[0, 1)` from the top 53 bits of a hash.
pub(crate) fn to_unit(h: u64) -> f64 {
    (h >> 11) as f64 / (1_u64 << 53) as f64
}

/// A uniform number in `[0, 1)` from the hash of (seed, agent, tick, purpose).
pub(crate) fn unit(seed: u64, id: u32, tick: u64, purpose: u64) -> f64 {
    to_unit(mix(seed ^ mix(u64::from(id) ^ mix(tick ^ mix(purpose)))))
}

fn pick<const N: usize>(shares: &[f64; N], u: f64) -> usize {
    let total: f64 = shares.iter().sum();
    let mut acc = 0.0;
    for (i, s) in shares.iter().enumerate() {
        acc += s / total;
        if u < acc {
            return i;
        }
    }
    N - 1
}

const PURPOSE_KIND: u64 = 1;
const PURPOSE_PATTERN: u64 = 2;
const PURPOSE_SIZE: u64 = 3;
const PURPOSE_WEIGHT: u64 = 4;
const PURPOSE_PHASE: u64 = 5;
const PURPOSE_TREND: u64 = 6;
const PURPOSE_PEER: u64 = 100;
const PURPOSE_NOISE: u64 = 7;
const PURPOSE_BURST: u64 = 8;
const PURPOSE_SEND: u64 = 9;
const PURPOSE_IDLE: u64 = 10;

impl ModelSpec {
    pub(crate) fn new(s: &Scenario) -> ModelSpec {
        let b = &s.behaviour;
        let w = &s.workload;
        ModelSpec {
            seed: mix(s.seed ^ 0x51_4D_u64),
            agents: s.topology.agents as u32,
            leaves: s.leaves() as u32,
            kinds: s.pools.kinds.len(),
            behaviour: [b.compute, b.chatty, b.idle],
            pattern: [w.steady, w.bursty, w.diurnal, w.trending],
            message_work: b.message_work,
            tick_work: b.tick_work,
            partners: b.partners,
            locality: b.locality,
            noise: w.noise,
            period: w.period_ticks as f64,
            amplitude: w.amplitude,
            burst_probability: w.burst_probability,
            burst_factor: w.burst_factor,
            burst_ticks: w.burst_ticks,
            trend: w.trend,
            phase_spread: w.phase_spread,
        }
    }

    /// The leaf (0-based, in creation order) hosting agent `id` at the start.
    pub(crate) fn leaf_of(&self, id: u32) -> u32 {
        home_leaf(self.agents, self.leaves, id)
    }

    /// The first agent of leaf `leaf` and the number of its agents.
    pub(crate) fn leaf_range(&self, leaf: u32) -> (u32, u32) {
        home_range(self.agents, self.leaves, leaf)
    }

    pub(crate) fn build(&self, id: u32) -> AgentModel {
        let u = |purpose| unit(self.seed, id, 0, purpose);
        let kind = match pick(&self.behaviour, u(PURPOSE_KIND)) {
            0 => Kind::Compute,
            1 => Kind::Chatty,
            _ => Kind::Idle,
        };
        let pattern = match pick(&self.pattern, u(PURPOSE_PATTERN)) {
            0 => Pattern::Steady,
            1 => Pattern::Bursty,
            2 => Pattern::Diurnal,
            _ => Pattern::Trending,
        };
        let size = 0.5 + 1.5 * u(PURPOSE_SIZE);
        let k = self.kinds;
        let base: Vec<f64> = (0..k)
            .map(|i| {
                let a = match kind {
                    Kind::Compute if i == 0 => 4.0,
                    Kind::Compute => 1.5,
                    Kind::Chatty if i + 1 == k => 4.0,
                    Kind::Chatty => 1.0,
                    Kind::Idle if i == 1 % k => 1.5,
                    Kind::Idle => 0.5,
                };
                a * size
            })
            .collect();
        let wu = u(PURPOSE_WEIGHT);
        let weight = if wu < 0.6 {
            1.0
        } else if wu < 0.9 {
            2.0
        } else {
            4.0
        };
        let min_fraction = match kind {
            Kind::Compute => 0.5,
            Kind::Chatty => 0.25,
            Kind::Idle => 1.0,
        };
        let (first, len) = self.leaf_range(self.leaf_of(id));
        let peers = (0..self.partners)
            .map(|j| {
                let pu = unit(self.seed, id, 0, PURPOSE_PEER + 2 * j as u64);
                let r = mix(self.seed ^ mix(u64::from(id) ^ (PURPOSE_PEER + 2 * j as u64 + 1)));
                if pu < self.locality && len > 1 {
                    // A peer in the same leaf, never itself.
                    let off = 1 + (r % u64::from(len - 1)) as u32;
                    first + (id - first + off) % len
                } else {
                    (r % u64::from(self.agents)) as u32
                }
            })
            .collect();
        AgentModel {
            id,
            kind,
            pattern,
            base,
            weight,
            min_fraction,
            phase: u(PURPOSE_PHASE) * std::f64::consts::TAU * self.phase_spread,
            trend_sign: if u(PURPOSE_TREND) < 2.0 / 3.0 {
                1.0
            } else {
                -1.0
            },
            peers,
        }
    }

    /// The demand multiplier of agent `m` at tick `t`.
    pub(crate) fn multiplier(&self, m: &AgentModel, t: u64) -> f64 {
        let shape = match m.pattern {
            Pattern::Steady => 1.0,
            Pattern::Diurnal => {
                1.0 + self.amplitude
                    * (std::f64::consts::TAU * t as f64 / self.period + m.phase).sin()
            }
            Pattern::Bursty => {
                let from = t.saturating_sub(self.burst_ticks.saturating_sub(1));
                let bursting = (from..=t)
                    .any(|s| unit(self.seed, m.id, s, PURPOSE_BURST) < self.burst_probability);
                if bursting { self.burst_factor } else { 1.0 }
            }
            Pattern::Trending => (1.0 + m.trend_sign * self.trend * t as f64).max(0.1),
        };
        let noise = 1.0 + self.noise * (2.0 * unit(self.seed, m.id, t, PURPOSE_NOISE) - 1.0);
        (shape * noise).max(0.01)
    }

    /// What agent `m` asks for at tick `t`.
    pub(crate) fn request(&self, m: &AgentModel, t: u64) -> ResourceRequest {
        let f = self.multiplier(m, t);
        let desired: Vec<f64> = m.base.iter().map(|b| b * f).collect();
        let min: Vec<f64> = desired.iter().map(|d| d * m.min_fraction).collect();
        ResourceRequest::new(
            ResourceVector::from(min),
            ResourceVector::from(desired),
            m.weight,
            PoolFilter::Any,
        )
        .expect("amounts are finite and positive, min <= desired, weight > 0")
    }

    /// Desired demand of agent `m` at tick `t`, summed over kinds.
    pub(crate) fn desired_sum(&self, m: &AgentModel, t: u64) -> f64 {
        m.base.iter().sum::<f64>() * self.multiplier(m, t)
    }

    /// Messages agent `m` sends per tick, on average.
    pub(crate) fn send_rate(m: &AgentModel) -> f64 {
        match m.kind {
            Kind::Compute => 1.0,
            Kind::Chatty => 6.0,
            Kind::Idle => 0.2,
        }
    }

    /// Agent `m`'s tick `t`: its own work, then the tasks it sends (`out` is cleared first).
    /// Returns the work's result.
    pub(crate) fn run_tick(&self, m: &AgentModel, t: u64, out: &mut Vec<Task>) -> u64 {
        out.clear();
        let (work, sends) = match m.kind {
            Kind::Compute => (self.tick_work, 1),
            Kind::Chatty => (self.tick_work / 4, 6),
            Kind::Idle => (
                self.tick_work / 4,
                u32::from(unit(self.seed, m.id, t, PURPOSE_IDLE) < 0.2),
            ),
        };
        let r = burn(work, self.seed ^ u64::from(m.id) ^ t);
        if m.peers.is_empty() {
            return r;
        }
        for j in 0..sends {
            let u = unit(self.seed, m.id, t, PURPOSE_SEND + 3 * u64::from(j));
            let to = m.peers[(u * m.peers.len() as f64) as usize % m.peers.len()];
            let pu = unit(self.seed, m.id, t, PURPOSE_SEND + 3 * u64::from(j) + 1);
            let priority = if pu < 0.05 {
                Priority::High
            } else if pu < 0.85 {
                Priority::Normal
            } else {
                Priority::Low
            };
            out.push(Task {
                to: AgentId(to),
                priority,
                units: self.message_work,
            });
        }
        r
    }
}

/// The built-in model as a workload: a profile is an agent's fixed traits.
impl AgentWorkload for ModelSpec {
    type Profile = AgentModel;

    fn profile(&self, agent: AgentId) -> AgentModel {
        self.build(agent.0)
    }

    fn tick(&self, agent: &AgentModel, tick: u64, out: &mut Vec<Task>) {
        self.run_tick(agent, tick, out);
    }

    // `handle`: the default, `burn(units, receiver)`.

    fn demand(&self, agent: &AgentModel, tick: u64) -> ResourceRequest {
        self.request(agent, tick)
    }

    fn peers(&self, agent: &AgentModel) -> Vec<(AgentId, f64)> {
        if agent.peers.is_empty() {
            return Vec::new();
        }
        let w = ModelSpec::send_rate(agent) / agent.peers.len() as f64;
        agent.peers.iter().map(|&p| (AgentId(p), w)).collect()
    }

    fn desired_total(&self, agent: &AgentModel, tick: u64) -> f64 {
        self.desired_sum(agent, tick)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(agents: usize, clusters: usize) -> ModelSpec {
        let mut s = Scenario::default();
        s.topology.agents = agents;
        s.topology.clusters = clusters;
        ModelSpec::new(&s)
    }

    #[test]
    fn leaves_partition_the_agents_in_order() {
        for (n, c) in [(10_000, 100), (1_003, 7), (17, 4)] {
            let sp = spec(n, c);
            let mut next = 0;
            for leaf in 0..sp.leaves {
                let (first, len) = sp.leaf_range(leaf);
                assert_eq!(first, next);
                assert!(len >= 1);
                for id in first..first + len {
                    assert_eq!(sp.leaf_of(id), leaf);
                }
                next = first + len;
            }
            assert_eq!(next, n as u32);
        }
    }

    #[test]
    fn models_are_functions_of_the_id_and_local_peers_stay_in_the_leaf() {
        let sp = spec(2_000, 10);
        for id in [0, 1, 999, 1_999] {
            let a = sp.build(id);
            let b = sp.build(id);
            assert_eq!(a.peers, b.peers);
            assert_eq!(sp.request(&a, 5), sp.request(&b, 5));
            assert!(!a.peers.contains(&id) || a.peers.iter().all(|&p| p < 2_000));
        }
        let local = (0..2_000)
            .flat_map(|id| {
                let m = sp.build(id);
                m.peers.into_iter().map(move |p| (id, p))
            })
            .filter(|&(a, b)| sp.leaf_of(a) == sp.leaf_of(b))
            .count();
        let share = local as f64 / (2_000.0 * 6.0);
        assert!((0.75..0.9).contains(&share), "{share}");
    }

    #[test]
    fn patterns_move_demand_as_described() {
        let mut s = Scenario::default();
        s.workload.noise = 0.0;
        s.workload.trend = 0.05;
        (s.workload.period_ticks, s.workload.amplitude) = (24, 0.3);
        let sp = ModelSpec::new(&s);
        let find = |p: Pattern| {
            (0..2_000)
                .map(|id| sp.build(id))
                .find(|m| m.pattern == p)
                .unwrap()
        };
        let steady = find(Pattern::Steady);
        assert_eq!(sp.multiplier(&steady, 0), sp.multiplier(&steady, 50));
        let diurnal = find(Pattern::Diurnal);
        let day: Vec<f64> = (0..24).map(|t| sp.multiplier(&diurnal, t)).collect();
        let (lo, hi) = day
            .iter()
            .fold((f64::MAX, f64::MIN), |(l, h), &x| (l.min(x), h.max(x)));
        assert!(hi - lo > 0.5, "amplitude 0.3 swings by 0.6: {day:?}");
        assert!((sp.multiplier(&diurnal, 3) - sp.multiplier(&diurnal, 27)).abs() < 1e-9);
        let trending = find(Pattern::Trending);
        let d = sp.multiplier(&trending, 10) - sp.multiplier(&trending, 0);
        assert!((d.abs() - 0.5).abs() < 1e-9, "{d}");
        let bursty = find(Pattern::Bursty);
        let levels: Vec<f64> = (0..2_000).map(|t| sp.multiplier(&bursty, t)).collect();
        let bursting = levels.iter().filter(|&&x| x == 2.0).count() as f64 / 2_000.0;
        // p = 0.02 per tick, bursts of 4 ticks: 1 - 0.98^4 = 7.8% of ticks.
        assert!((0.04..0.12).contains(&bursting), "{bursting}");
    }

    #[test]
    fn ticks_send_to_peers_with_the_behaviours_rates() {
        let sp = spec(1_000, 10);
        let mut out = Vec::new();
        let mut sent = 0;
        for id in 0..1_000 {
            let m = sp.build(id);
            for t in 0..10 {
                sp.run_tick(&m, t, &mut out);
                let expected = match m.kind {
                    Kind::Compute => 1..=1,
                    Kind::Chatty => 6..=6,
                    Kind::Idle => 0..=1,
                };
                assert!(expected.contains(&out.len()));
                assert!(out.iter().all(|task| m.peers.contains(&task.to.0)));
                sent += out.len();
            }
        }
        // 0.5 * 1 + 0.3 * 6 + 0.2 * 0.2 = 2.34 per agent and tick.
        let rate = sent as f64 / 10_000.0;
        assert!((2.1..2.6).contains(&rate), "{rate}");
    }
}
