//! Which worker runs which partitions: at the start each worker gets one partition per core it
//! offers (so shares follow cores); a lost worker's partitions go, one at a time, to the worker
//! with the fewest partitions per core; a worker that joins mid-run takes partitions from the
//! busiest workers while that brings both closer to an even load per core. Partitions are whole:
//! the split is as even as whole partitions allow.

/// One worker's cores and partitions.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Holder {
    pub cores: usize,
    pub partitions: Vec<usize>,
}

impl Holder {
    fn load(&self, extra: isize) -> f64 {
        (self.partitions.len() as isize + extra) as f64 / self.cores.max(1) as f64
    }
}

/// The first placement: worker `k` with `cores[k]` cores gets that many partitions, in order.
pub fn initial(cores: &[usize]) -> Vec<Holder> {
    let mut next = 0;
    cores
        .iter()
        .map(|&c| {
            let partitions = (next..next + c.max(1)).collect();
            next += c.max(1);
            Holder { cores: c.max(1), partitions }
        })
        .collect()
}

/// Gives each of `orphans` to the holder (among `alive`) with the fewest partitions per core;
/// returns (holder index, partition) for each move.
pub fn adopt(orphans: &[usize], holders: &mut [Holder], alive: &[bool]) -> Vec<(usize, usize)> {
    let mut moves = Vec::new();
    for &partition in orphans {
        let best = (0..holders.len())
            .filter(|&h| alive[h])
            .min_by(|&a, &b| holders[a].load(1).total_cmp(&holders[b].load(1)).then(a.cmp(&b)));
        let Some(best) = best else { break };
        holders[best].partitions.push(partition);
        moves.push((best, partition));
    }
    moves
}

/// Moves partitions to holder `newcomer` from the busiest others while that makes the load per
/// core more even; returns (from holder, partition) for each move.
pub fn rebalance(newcomer: usize, holders: &mut [Holder], alive: &[bool]) -> Vec<(usize, usize)> {
    let mut moves = Vec::new();
    loop {
        let donor = (0..holders.len())
            .filter(|&h| h != newcomer && alive[h] && holders[h].partitions.len() > 1)
            .max_by(|&a, &b| holders[a].load(0).total_cmp(&holders[b].load(0)).then(b.cmp(&a)));
        let Some(donor) = donor else { break };
        // Move only when that brings the two loads per core closer together.
        let before = (holders[donor].load(0) - holders[newcomer].load(0)).abs();
        let after = (holders[donor].load(-1) - holders[newcomer].load(1)).abs();
        if after >= before {
            break;
        }
        let partition = holders[donor].partitions.pop().expect("more than one");
        holders[newcomer].partitions.push(partition);
        moves.push((donor, partition));
    }
    moves
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_follow_cores_and_losses_move_to_the_least_loaded() {
        let mut holders = initial(&[2, 1, 4]);
        assert_eq!(holders[0].partitions, [0, 1]);
        assert_eq!(holders[2].partitions, [3, 4, 5, 6]);
        // Worker 2 lost: its four partitions spread over 2 cores and 1 core as 3:1 or so.
        let orphans = std::mem::take(&mut holders[2].partitions);
        let moves = adopt(&orphans, &mut holders, &[true, true, false]);
        assert_eq!(moves.len(), 4);
        assert_eq!((holders[0].partitions.len(), holders[1].partitions.len()), (5, 2));
    }

    #[test]
    fn a_newcomer_takes_what_evens_the_load() {
        let mut holders = initial(&[2, 2]);
        holders.push(Holder { cores: 2, partitions: Vec::new() });
        let moves = rebalance(2, &mut holders, &[true, true, true]);
        assert_eq!(moves.len(), 1, "{holders:?}");
        let counts: Vec<usize> = holders.iter().map(|h| h.partitions.len()).collect();
        assert_eq!(counts.iter().sum::<usize>(), 4);
        assert!(counts.iter().all(|&c| (1..=2).contains(&c)), "{counts:?}");
        // Two cores' partitions and a one-core newcomer: one moves (loads 0.5 and 1 per core
        // are closer than 1 and 0).
        let mut uneven = initial(&[2]);
        uneven.push(Holder { cores: 1, partitions: Vec::new() });
        assert_eq!(rebalance(1, &mut uneven, &[true, true]), [(0, 1)]);
        // Nothing to move: one partition each.
        let mut single = initial(&[1]);
        single.push(Holder { cores: 1, partitions: Vec::new() });
        assert!(rebalance(1, &mut single, &[true, true]).is_empty());
    }
}
