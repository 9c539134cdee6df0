//! Data-parallel training under `mpirun` (the `mpi` feature): the MPI group behind core's
//! [`Collective`], and how a process learns that it was launched as one rank of several.
//! The design, and why every rank reads the whole input, is docs/DISTRIBUTED.md.

#[cfg(feature = "mpi")]
pub use with_mpi::{join, transport};

/// The number of processes the launcher started, if this process is one rank of a job
/// (`mpirun`/`mpiexec` of Open MPI, or MPICH's Hydra).
pub fn launched_size() -> Option<usize> {
    ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE"].iter().find_map(|k| std::env::var(k).ok()?.parse().ok())
}

/// This process's rank among those on its machine, if launched as one rank of several.
pub fn local_rank() -> Option<usize> {
    ["OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID"].iter().find_map(|k| std::env::var(k).ok()?.parse().ok())
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

    /// Time spent communicating, for the summary printed at the end of training. Each
    /// collective is preceded by a barrier, so that the time the ranks wait for the slowest
    /// one is told apart from the time the exchange itself takes.
    #[derive(Debug, Default, Clone, Copy)]
    pub struct CommTime {
        pub steps: u64,
        /// At the barriers: waiting for the slowest rank.
        pub wait: Duration,
        /// In [`Collective::sum`]: the gradients.
        pub sum: Duration,
        /// In [`Collective::gather`]: the outputs of each step.
        pub gather: Duration,
    }

    impl CommTime {
        pub fn describe(&self) -> String {
            let per = |d: Duration| d.as_secs_f64() * 1e3 / self.steps.max(1) as f64;
            format!(
                "per step: gradient sum {:.3} ms, output gather {:.3} ms, waiting for the slowest rank {:.3} ms \
                 (mean over {} steps)",
                per(self.sum),
                per(self.gather),
                per(self.wait),
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

    /// The group a data-parallel run trains in, over the best transport for `device`: NCCL
    /// on GPUs when the binary has the `nccl` feature and each rank on this machine has a
    /// GPU of its own, MPI through host memory otherwise. Returns the transport's name.
    pub fn transport(
        group: MpiGroup,
        device: &candle_core::Device,
    ) -> anyhow::Result<(Box<dyn Collective>, &'static str)> {
        #[cfg(feature = "nccl")]
        if device.is_cuda() && super::ranks_on_this_machine().unwrap_or(1) <= crate::device::gpu_count() {
            return Ok((Box::new(super::with_nccl::NcclGroup::new(group, device)?), "NCCL"));
        }
        let _ = device;
        Ok((Box::new(group), "MPI"))
    }

    impl MpiGroup {
        /// Rank 0's `bytes`, on every rank.
        #[cfg(feature = "nccl")]
        pub fn broadcast(&self, bytes: &mut [u8]) {
            self.world.process_at_rank(0).broadcast_into(bytes);
        }

        /// Waits for every rank, and counts the time as waiting.
        fn barrier(&self) -> Instant {
            let started = Instant::now();
            self.world.barrier();
            let now = Instant::now();
            self.time.lock().unwrap_or_else(|p| p.into_inner()).wait += now - started;
            now
        }

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
            let started = self.barrier();
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
            let started = self.barrier();
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

/// NCCL for the two collectives of a step on GPUs (the `nccl` feature), on device memory,
/// with MPI for bootstrapping and for what stays on the host (checksums).
#[cfg(feature = "nccl")]
mod with_nccl {
    use std::time::Instant;

    use adaftr_core::train::{parallel, Collective};
    use adaftr_core::Result;
    use anyhow::{bail, Context};
    use candle_core::backend::BackendStorage;
    use candle_core::cuda_backend::cudarc::nccl::safe::{Comm, Id, ReduceOp};
    use candle_core::{CpuStorage, CudaStorage, CustomOp1, DType, Device, Layout, Shape, Tensor};

    use super::with_mpi::MpiGroup;

    pub struct NcclGroup {
        mpi: MpiGroup,
        comm: Comm,
    }

    // SAFETY: the communicator is used by one thread at a time (the group is owned by one
    // trainer, whose collectives take `&mut self`), which is all NCCL asks of a
    // communicator; MpiGroup's own reasoning covers the rest.
    unsafe impl Send for NcclGroup {}

    impl NcclGroup {
        /// Every rank of `mpi` calls this with its own GPU: rank 0 creates NCCL's unique id,
        /// MPI broadcasts it, and each rank joins the communicator on its device's stream.
        pub fn new(mpi: MpiGroup, device: &Device) -> anyhow::Result<Self> {
            let Device::Cuda(dev) = device else { bail!("NCCL needs a CUDA device") };
            let mut bytes = [0u8; 128];
            if mpi.rank() == 0 {
                let id = Id::new().map_err(|e| anyhow::anyhow!("{e:?}")).context("creating NCCL's unique id")?;
                for (b, c) in bytes.iter_mut().zip(id.internal()) {
                    *b = *c as u8;
                }
            }
            mpi.broadcast(&mut bytes);
            let id = Id::uninit(bytes.map(|b| b as _));
            let comm = Comm::from_rank(dev.cuda_stream(), mpi.rank(), mpi.size(), id)
                .map_err(|e| anyhow::anyhow!("{e:?}"))
                .context("joining the NCCL communicator")?;
            Ok(Self { mpi, comm })
        }

        fn timed<T>(&self, sum: bool, f: impl FnOnce() -> Result<T>) -> Result<T> {
            let started = Instant::now();
            let out = f()?;
            let mut t = self.mpi.time.lock().unwrap_or_else(|p| p.into_inner());
            if sum {
                t.sum += started.elapsed();
                t.steps += 1;
            } else {
                t.gather += started.elapsed();
            }
            Ok(out)
        }
    }

    fn nccl_error(what: &str, e: impl std::fmt::Debug) -> candle_core::Error {
        candle_core::Error::Msg(format!("NCCL {what}: {e:?}"))
    }

    /// The sum over the group of a contiguous f32 tensor, into a new device buffer.
    struct AllReduce<'a>(&'a Comm);

    impl CustomOp1 for AllReduce<'_> {
        fn name(&self) -> &'static str {
            "nccl-all-reduce"
        }

        fn cpu_fwd(&self, _: &CpuStorage, _: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
            candle_core::bail!("NCCL reduces device memory only")
        }

        fn cuda_fwd(&self, s: &CudaStorage, l: &Layout) -> candle_core::Result<(CudaStorage, Shape)> {
            let Some((start, end)) = l.contiguous_offsets() else { candle_core::bail!("a strided NCCL input") };
            let src = s.as_cuda_slice::<f32>()?.slice(start..end);
            let dev = s.device().clone();
            let mut dst = dev.alloc_zeros::<f32>(end - start)?;
            self.0.all_reduce(&src, &mut dst, &ReduceOp::Sum).map_err(|e| nccl_error("all-reduce", e))?;
            Ok((CudaStorage::wrap_cuda_slice(dst, dev), l.shape().clone()))
        }
    }

    /// Every rank's (rows, width) f32 block, all of the same shape, stacked in rank order.
    struct AllGather<'a>(&'a Comm);

    impl CustomOp1 for AllGather<'_> {
        fn name(&self) -> &'static str {
            "nccl-all-gather"
        }

        fn cpu_fwd(&self, _: &CpuStorage, _: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
            candle_core::bail!("NCCL gathers device memory only")
        }

        fn cuda_fwd(&self, s: &CudaStorage, l: &Layout) -> candle_core::Result<(CudaStorage, Shape)> {
            let Some((start, end)) = l.contiguous_offsets() else { candle_core::bail!("a strided NCCL input") };
            let (rows, width) = l.shape().dims2()?;
            let src = s.as_cuda_slice::<f32>()?.slice(start..end);
            let dev = s.device().clone();
            let size = self.0.world_size();
            let mut dst = dev.alloc_zeros::<f32>(size * (end - start))?;
            self.0.all_gather(&src, &mut dst).map_err(|e| nccl_error("all-gather", e))?;
            Ok((CudaStorage::wrap_cuda_slice(dst, dev), Shape::from((size * rows, width))))
        }
    }

    impl Collective for NcclGroup {
        fn rank(&self) -> usize {
            self.mpi.rank()
        }

        fn size(&self) -> usize {
            self.mpi.size()
        }

        fn sum(&mut self, buf: &mut [f32]) -> Result<()> {
            self.mpi.sum(buf)
        }

        fn gather(&mut self, local: &[f32], counts: &[usize]) -> Result<Vec<f32>> {
            self.mpi.gather(local, counts)
        }

        fn gather_u64(&mut self, value: u64) -> Result<Vec<u64>> {
            self.mpi.gather_u64(value)
        }

        fn sum_tensor(&mut self, t: &Tensor) -> Result<Tensor> {
            if !t.device().is_cuda() {
                return parallel::sum_through_host(&mut self.mpi, t);
            }
            let x = t.to_dtype(DType::F32)?.contiguous()?;
            self.timed(true, || Ok(x.apply_op1_no_bwd(&AllReduce(&self.comm))?.to_dtype(t.dtype())?))
        }

        fn gather_rows(&mut self, local: &Tensor, counts: &[usize]) -> Result<Tensor> {
            if !local.device().is_cuda() {
                return parallel::gather_through_host(&mut self.mpi, local, counts);
            }
            // NCCL's all-gather takes equal counts: pad every share to the largest, then cut.
            let (rows, width) = local.dims2()?;
            let most = counts.iter().copied().max().unwrap_or(rows);
            let mut x = local.to_dtype(DType::F32)?;
            if rows < most {
                x = Tensor::cat(&[&x, &Tensor::zeros((most - rows, width), DType::F32, local.device())?], 0)?;
            }
            let x = x.contiguous()?;
            self.timed(false, || {
                let all = x.apply_op1_no_bwd(&AllGather(&self.comm))?;
                let parts: Vec<Tensor> = counts
                    .iter()
                    .enumerate()
                    .map(|(r, &n)| all.narrow(0, r * most, n))
                    .collect::<candle_core::Result<_>>()?;
                Ok(Tensor::cat(&parts, 0)?)
            })
        }
    }
}
