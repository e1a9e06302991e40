//! A schedule of faults, fully determined by its seed: which nemeses strike which nodes, when and
//! for how long, and what kind of workers the cluster has. Pure: no processes, so a seed printed
//! by a failed run can be read back here.

use std::time::Duration;

/// Node indices in every schedule's cluster: three managers, then two workers.
pub const MANAGERS: [usize; 3] = [0, 1, 2];
pub const WORKERS: [usize; 2] = [3, 4];
pub const NODES: usize = 5;

/// splitmix64: small, fast and good enough to draw schedules from a seed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    pub fn pick<T: Copy>(&mut self, from: &[T]) -> T {
        from[self.below(from.len() as u64) as usize]
    }

    pub fn millis(&mut self, from: u64, to: u64) -> Duration {
        Duration::from_millis(from + self.below(to - from + 1))
    }
}

/// How a network partition cuts the cluster. Every cut drops packets at the receiving host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cut {
    /// `side` (one manager, perhaps with workers) loses the rest: a minority and a majority.
    Split { side: Vec<usize> },
    /// Whichever manager leads when the cut starts loses everyone else.
    IsolateLeader,
    /// Packets from `from` no longer reach `to`; the other way still works.
    OneWay { from: usize, to: usize },
    /// `left` and `right` lose each other; `bridge` still sees both.
    Bridge {
        bridge: usize,
        left: Vec<usize>,
        right: Vec<usize>,
    },
}

impl Cut {
    /// The one-way drops (from, to) this cut is made of, given the leader when it starts.
    pub fn drops(&self, leader: Option<usize>) -> Vec<(usize, usize)> {
        let between = |a: &[usize], b: &[usize]| {
            let mut out = Vec::new();
            for &x in a {
                for &y in b {
                    out.push((x, y));
                    out.push((y, x));
                }
            }
            out
        };
        let rest = |side: &[usize]| (0..NODES).filter(|n| !side.contains(n)).collect::<Vec<_>>();
        match self {
            Cut::Split { side } => between(side, &rest(side)),
            Cut::IsolateLeader => match leader {
                Some(l) => between(&[l], &rest(&[l])),
                None => Vec::new(),
            },
            Cut::OneWay { from, to } => vec![(*from, *to)],
            Cut::Bridge { left, right, .. } => between(left, right),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Nemesis {
    /// kill -9, then `swarmd run` when the fault ends.
    Kill {
        node: usize,
    },
    /// SIGSTOP, then SIGCONT when the fault ends.
    Pause {
        node: usize,
    },
    Partition(Cut),
    /// A worker becomes a manager, and is demoted again when the fault ends.
    Promote {
        worker: usize,
    },
    /// A manager is demoted, and promoted again when the fault ends.
    Demote {
        manager: usize,
    },
    /// The manager's data dir (a small tmpfs) is filled up, then freed.
    DiskFull {
        manager: usize,
    },
    /// The manager's wall clock jumps by `millis` (forwards or back), then comes back.
    ClockJump {
        manager: usize,
        millis: i64,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    pub start: Duration,
    pub length: Duration,
    pub nemesis: Nemesis,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    pub seed: u64,
    /// Workers run real containers on the local engine; otherwise they are simulated.
    pub real_workers: bool,
    /// How long faults are injected while the workload runs.
    pub window: Duration,
    pub faults: Vec<Fault>,
}

impl Schedule {
    /// The schedule of `seed`, with faults spread over `window`.
    pub fn from_seed(seed: u64, window: Duration) -> Self {
        let mut rng = Rng::new(seed);
        let real_workers = rng.chance(35);
        let window_ms = window.as_millis() as u64;
        let count = 2 + rng.below(3);
        let mut faults = Vec::new();
        let mut roles_changed = false;
        let mut disk_filled = false;
        while (faults.len() as u64) < count {
            let nemesis = match rng.below(11) {
                0 | 1 => Nemesis::Kill {
                    node: rng.below(5) as usize,
                },
                2 => Nemesis::Pause {
                    node: rng.below(5) as usize,
                },
                3 => Nemesis::Partition(Cut::Split {
                    side: {
                        let mut side = vec![rng.pick(&MANAGERS)];
                        if rng.chance(50) {
                            side.push(rng.pick(&WORKERS));
                        }
                        side
                    },
                }),
                4 => Nemesis::Partition(Cut::IsolateLeader),
                5 => {
                    let from = rng.below(5) as usize;
                    let to = (from + 1 + rng.below(4) as usize) % NODES;
                    Nemesis::Partition(Cut::OneWay { from, to })
                }
                6 => {
                    let bridge = rng.pick(&MANAGERS);
                    let others: Vec<usize> = MANAGERS.iter().copied().filter(|m| *m != bridge).collect();
                    let (mut left, mut right) = (vec![others[0]], vec![others[1]]);
                    if rng.chance(50) {
                        left.push(WORKERS[0]);
                        right.push(WORKERS[1]);
                    }
                    Nemesis::Partition(Cut::Bridge { bridge, left, right })
                }
                7 if !roles_changed => {
                    roles_changed = true;
                    if rng.chance(50) {
                        Nemesis::Promote {
                            worker: rng.pick(&WORKERS),
                        }
                    } else {
                        Nemesis::Demote {
                            manager: rng.pick(&MANAGERS),
                        }
                    }
                }
                8 if !disk_filled => {
                    disk_filled = true;
                    Nemesis::DiskFull {
                        manager: rng.pick(&MANAGERS),
                    }
                }
                9 => {
                    let millis = 30_000 + rng.below(570_000) as i64;
                    Nemesis::ClockJump {
                        manager: rng.pick(&MANAGERS),
                        millis: if rng.chance(50) { millis } else { -millis },
                    }
                }
                _ => Nemesis::Kill {
                    node: rng.pick(&MANAGERS),
                },
            };
            let start = rng.millis(0, window_ms.saturating_sub(2_000));
            let longest = window_ms.saturating_sub(start.as_millis() as u64).max(1_000);
            let length = rng.millis(1_000, longest.min(7_000));
            faults.push(Fault { start, length, nemesis });
        }
        faults.sort_by_key(|f| f.start);
        Self {
            seed,
            real_workers,
            window,
            faults,
        }
    }

    /// The manager whose data dir is a small tmpfs, if this schedule fills a disk.
    pub fn small_disk(&self) -> Option<usize> {
        self.faults.iter().find_map(|f| match f.nemesis {
            Nemesis::DiskFull { manager } => Some(manager),
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_determines_its_schedule_and_seeds_cover_every_nemesis() {
        let window = Duration::from_secs(10);
        assert_eq!(Schedule::from_seed(7, window), Schedule::from_seed(7, window));
        assert_ne!(Schedule::from_seed(7, window), Schedule::from_seed(8, window));
        let mut kinds = std::collections::BTreeSet::new();
        let mut real = 0;
        for seed in 0..200 {
            let s = Schedule::from_seed(seed, window);
            real += usize::from(s.real_workers);
            assert!((2..=4).contains(&s.faults.len()), "{s:?}");
            for f in &s.faults {
                assert!(f.start + f.length <= window, "{f:?}");
                kinds.insert(match &f.nemesis {
                    Nemesis::Kill { .. } => "kill",
                    Nemesis::Pause { .. } => "pause",
                    Nemesis::Partition(Cut::Split { .. }) => "split",
                    Nemesis::Partition(Cut::IsolateLeader) => "isolate-leader",
                    Nemesis::Partition(Cut::OneWay { from, to }) => {
                        assert_ne!(from, to);
                        "one-way"
                    }
                    Nemesis::Partition(Cut::Bridge { .. }) => "bridge",
                    Nemesis::Promote { .. } => "promote",
                    Nemesis::Demote { .. } => "demote",
                    Nemesis::DiskFull { .. } => "disk-full",
                    Nemesis::ClockJump { millis, .. } => {
                        assert!(millis.abs() >= 30_000);
                        "clock"
                    }
                });
            }
        }
        assert_eq!(kinds.len(), 10, "{kinds:?}");
        assert!((40..=100).contains(&real), "about a third with real workers: {real}");
    }

    #[test]
    fn cuts_drop_both_ways_except_the_one_way_cut() {
        let split = Cut::Split { side: vec![0, 3] };
        let drops = split.drops(None);
        assert!(drops.contains(&(0, 1)) && drops.contains(&(1, 0)) && drops.contains(&(3, 4)));
        assert!(!drops.contains(&(0, 3)));
        assert_eq!(Cut::OneWay { from: 1, to: 2 }.drops(None), vec![(1, 2)]);
        assert_eq!(Cut::IsolateLeader.drops(None), vec![]);
        assert_eq!(Cut::IsolateLeader.drops(Some(2)).len(), 8);
        let bridge = Cut::Bridge {
            bridge: 0,
            left: vec![1],
            right: vec![2],
        };
        assert_eq!(bridge.drops(None), vec![(1, 2), (2, 1)]);
    }
}
