//! Data-parallel training under `mpirun` (the `mpi` feature): the MPI group behind core's
//! [`Collective`], and how a process learns that it was launched as one rank of several.
//! The design, and why every rank reads the whole input, is docs/DISTRIBUTED.md.

#[cfg(feature = "mpi")]
pub use with_mpi::join;

/// The number of processes the launcher started, if this process is one rank of a job
/// (`mpirun`/`mpiexec` of Open MPI, or MPICH's Hydra).
pub fn launched_size() -> Option<usize> {
    ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE"].iter().find_map(|k| std::env::var(k).ok()?.parse().ok())
}

/// The number of ranks the launcher started on this machine, if known.
pub fn ranks_on_this_machine() -> Option<usize> {
    ["OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS"].iter().find_map(|k| std::env::var(k).ok()?.parse().ok())
}

#[cfg(feature = "mpi")]
mod with_mpi {
    use std::sync::{Arc, Mutex};
    use std::time::Instant;

    use adaftr_core::train::Collective;
    use adaftr_core::{Error, Result};
    use anyhow::bail;
    use mpi::collective::SystemOperation;
    use mpi::datatype::PartitionMut;
    use mpi::environment::{Threading, Universe};
    use mpi::topology::{Communicator, SimpleCommunicator};
    use mpi::traits::*;
    use mpi::Count;

    use std::time::Duration;

    /// Time spent communicating, for the summary printed at the end of training.
    #[derive(Debug, Default, Clone, Copy)]
    pub struct CommTime {
        pub steps: u64,
        /// In [`Collective::gather`](adaftr_core::train::Collective::gather): the outputs of
        /// each step.
        pub gather: Duration,
        /// In [`Collective::sum`](adaftr_core::train::Collective::sum): the gradients.
        pub sum: Duration,
    }

    impl CommTime {
        pub fn describe(&self) -> String {
            let per = |d: Duration| d.as_secs_f64() * 1e3 / self.steps.max(1) as f64;
            format!(
                "per step: gradient sum {:.3} ms, output gather {:.3} ms (mean over {} steps)",
                per(self.sum),
                per(self.gather),
                self.steps
            )
        }
    }

    /// This process's place in the MPI job (`MPI_COMM_WORLD`).
    pub struct MpiGroup {
        world: SimpleCommunicator,
        rank: usize,
        size: usize,
        /// Shared with the command, which reports it when training ends.
        pub time: Arc<Mutex<CommTime>>,
    }

    // SAFETY: MPI is initialised at `Threading::Serialized` or above (checked in `join`), so
    // any thread may call it as long as no two do at once; the group is owned by one
    // trainer, whose collectives take `&mut self`, so its calls never overlap.
    unsafe impl Send for MpiGroup {}

    /// Initialises MPI when this process was launched as one rank of several; `None` when
    /// it runs alone. The universe must outlive the group (dropping it finalises MPI).
    pub fn join() -> anyhow::Result<Option<(Universe, MpiGroup)>> {
        if super::launched_size().is_none_or(|n| n < 2) {
            return Ok(None);
        }
        let Some((universe, threading)) = mpi::initialize_with_threading(Threading::Serialized) else {
            bail!("MPI was already initialised");
        };
        if matches!(threading, Threading::Single | Threading::Funneled) {
            bail!("this MPI library offers only {threading:?} threading; adaftr needs Serialized");
        }
        let world = universe.world();
        let (rank, size) = (world.rank() as usize, world.size() as usize);
        Ok(Some((universe, MpiGroup { world, rank, size, time: Arc::default() })))
    }

    impl MpiGroup {
        fn counts(counts: &[usize]) -> Result<(Vec<Count>, Vec<Count>)> {
            let too_big = || Error::Parallel("a collective of more than 2^31 values".into());
            let c: Vec<Count> =
                counts.iter().map(|&n| Count::try_from(n).map_err(|_| too_big())).collect::<Result<_>>()?;
            let mut displs = Vec::with_capacity(c.len());
            let mut at: Count = 0;
            for n in &c {
                displs.push(at);
                at = at.checked_add(*n).ok_or_else(too_big)?;
            }
            Ok((c, displs))
        }
    }

    impl Collective for MpiGroup {
        fn rank(&self) -> usize {
            self.rank
        }

        fn size(&self) -> usize {
            self.size
        }

        /// A reduction to rank 0 and a broadcast of its result, rather than one
        /// `MPI_Allreduce`: the standard lets an all-reduce give ranks results that differ in
        /// the last bit, and the replicas stay identical only if their gradients are.
        fn sum(&mut self, buf: &mut [f32]) -> Result<()> {
            let started = Instant::now();
            let root = self.world.process_at_rank(0);
            if self.rank == 0 {
                let mut total = vec![0f32; buf.len()];
                root.reduce_into_root(&*buf, &mut total[..], SystemOperation::sum());
                buf.copy_from_slice(&total);
            } else {
                root.reduce_into(&*buf, SystemOperation::sum());
            }
            root.broadcast_into(buf);
            let mut t = self.time.lock().unwrap_or_else(|p| p.into_inner());
            t.sum += started.elapsed();
            t.steps += 1;
            Ok(())
        }

        fn gather(&mut self, local: &[f32], counts: &[usize]) -> Result<Vec<f32>> {
            let started = Instant::now();
            let (c, displs) = Self::counts(counts)?;
            let mut all = vec![0f32; counts.iter().sum()];
            {
                let mut part = PartitionMut::new(&mut all[..], c, displs);
                self.world.all_gather_varcount_into(local, &mut part);
            }
            self.time.lock().unwrap_or_else(|p| p.into_inner()).gather += started.elapsed();
            Ok(all)
        }

        fn gather_u64(&mut self, value: u64) -> Result<Vec<u64>> {
            let mut all = vec![0u64; self.size];
            self.world.all_gather_into(&value, &mut all[..]);
            Ok(all)
        }
    }
}
