//! Data-parallel training across processes: every rank holds the whole model, trains on its
//! own shard of each global batch, and the ranks sum their gradients once per step, so they
//! all apply the same update and stay identical. The transport is MPI (cargo feature `mpi`,
//! the `mpi` crate over MPICH or Open MPI, launched by `mpiexec -n N`); without it a run is
//! one process and every collective is the identity.
//!
//! What goes over the wire per step is one flat f32 buffer: every gradient (one GPU -> host
//! copy), the rank's loss, its count of loss terms and its stop request, summed by one
//! all-reduce. Weighting each rank's mean loss and gradients by its count of loss terms makes
//! the sum the gradient of the global batch's mean loss, whatever the shards' padding.

use crate::error::{Error, Result};

/// Which part of the data a rank takes: rows / utterances `rank`, `rank + size`, ...
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub rank: usize,
    pub size: usize,
}

impl Shard {
    /// The whole data set (one process).
    pub const WHOLE: Shard = Shard { rank: 0, size: 1 };

    /// The items of `items` this shard takes.
    pub fn take<T: Clone>(&self, items: &[T]) -> Vec<T> {
        items
            .iter()
            .skip(self.rank)
            .step_by(self.size)
            .cloned()
            .collect()
    }
}

/// The operations data-parallel training needs from its transport.
pub trait Collective {
    fn shard(&self) -> Shard;
    /// Sum `values` elementwise over every rank, in place.
    fn sum(&self, values: &mut [f64]) -> Result<()>;
    /// Sum `values` elementwise over every rank, in place (the gradients' buffer).
    fn sum_f32(&self, values: &mut [f32]) -> Result<()>;
    /// Replace `values` on every rank by rank 0's.
    fn broadcast_f32(&self, values: &mut [f32]) -> Result<()>;
    /// Replace `bytes` on every rank by rank 0's (any length).
    fn broadcast_bytes(&self, bytes: &mut Vec<u8>) -> Result<()>;

    fn is_root(&self) -> bool {
        self.shard().rank == 0
    }

    /// True on every rank when `flag` is true on any (a stop request, a failure).
    fn any(&self, flag: bool) -> Result<bool> {
        if self.shard().size == 1 {
            return Ok(flag);
        }
        let mut v = [f64::from(u8::from(flag))];
        self.sum(&mut v)?;
        Ok(v[0] > 0.0)
    }
}

/// One process: the collectives do nothing.
pub struct SingleProcess;

impl Collective for SingleProcess {
    fn shard(&self) -> Shard {
        Shard::WHOLE
    }
    fn sum(&self, _: &mut [f64]) -> Result<()> {
        Ok(())
    }
    fn sum_f32(&self, _: &mut [f32]) -> Result<()> {
        Ok(())
    }
    fn broadcast_f32(&self, _: &mut [f32]) -> Result<()> {
        Ok(())
    }
    fn broadcast_bytes(&self, _: &mut Vec<u8>) -> Result<()> {
        Ok(())
    }
}

/// The processes `mpiexec` started (or this one alone when run without it).
#[cfg(feature = "mpi")]
pub struct MpiWorld {
    _universe: mpi::environment::Universe,
    world: mpi::topology::SimpleCommunicator,
}

#[cfg(feature = "mpi")]
impl MpiWorld {
    /// Initialise MPI (once per process).
    pub fn init() -> Result<MpiWorld> {
        let universe = mpi::initialize()
            .ok_or_else(|| Error::format("MPI", "MPI was initialised already in this process"))?;
        let world = universe.world();
        Ok(MpiWorld {
            _universe: universe,
            world,
        })
    }
}

#[cfg(feature = "mpi")]
impl Collective for MpiWorld {
    fn shard(&self) -> Shard {
        use mpi::traits::Communicator;
        Shard {
            rank: self.world.rank() as usize,
            size: self.world.size() as usize,
        }
    }

    fn sum(&self, values: &mut [f64]) -> Result<()> {
        use mpi::collective::SystemOperation;
        use mpi::traits::CommunicatorCollectives;
        let send = values.to_vec();
        self.world
            .all_reduce_into(&send[..], values, SystemOperation::sum());
        Ok(())
    }

    fn sum_f32(&self, values: &mut [f32]) -> Result<()> {
        use mpi::collective::SystemOperation;
        use mpi::traits::CommunicatorCollectives;
        let send = values.to_vec();
        self.world
            .all_reduce_into(&send[..], values, SystemOperation::sum());
        Ok(())
    }

    fn broadcast_f32(&self, values: &mut [f32]) -> Result<()> {
        use mpi::traits::{Communicator, Root};
        self.world.process_at_rank(0).broadcast_into(values);
        Ok(())
    }

    fn broadcast_bytes(&self, bytes: &mut Vec<u8>) -> Result<()> {
        use mpi::traits::{Communicator, Root};
        let root = self.world.process_at_rank(0);
        let mut len = bytes.len() as u64;
        root.broadcast_into(&mut len);
        bytes.resize(len as usize, 0);
        root.broadcast_into(&mut bytes[..]);
        Ok(())
    }
}

/// The transport of this process: MPI when the crate is built with the `mpi` feature (a run
/// without `mpiexec` is then a world of one), else one process. Started by a launcher for
/// several processes (MPICH's `PMI_SIZE`, Open MPI's `OMPI_COMM_WORLD_SIZE`) it refuses to
/// run as one process among several that would each think they are alone.
pub fn world() -> Result<Box<dyn Collective>> {
    let launched = ["PMI_SIZE", "OMPI_COMM_WORLD_SIZE"]
        .iter()
        .find_map(|v| std::env::var(v).ok()?.parse::<usize>().ok());
    #[cfg(feature = "mpi")]
    let world: Box<dyn Collective> = Box::new(MpiWorld::init()?);
    #[cfg(not(feature = "mpi"))]
    let world: Box<dyn Collective> = Box::new(SingleProcess);
    if let Some(n) = launched.filter(|&n| n != world.shard().size) {
        let why = match cfg!(feature = "mpi") {
            true => "the MPI library it was built against is not the launcher's",
            false => "it was built without the `mpi` feature (cargo build --features mpi)",
        };
        return Err(Error::format(
            "distributed training",
            format!(
                "started as one of {n} processes, but this program sees {}: {why}",
                world.shard().size
            ),
        ));
    }
    Ok(world)
}

/// Every rank agrees that start-up went well, or all stop: a rank whose start failed (a run
/// directory in use, a bad checkpoint) would otherwise leave the others waiting in the first
/// collective for ever.
pub fn agree<T>(coll: &dyn Collective, result: Result<T>) -> Result<T> {
    let failed = coll.any(result.is_err())?;
    match result {
        Err(e) => Err(e),
        Ok(_) if failed => Err(Error::format(
            "distributed training",
            "another rank failed to start (its error is in its output)",
        )),
        ok => ok,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_are_disjoint_and_cover_the_items() {
        let items: Vec<u32> = (0..7).collect();
        let a = Shard { rank: 0, size: 2 }.take(&items);
        let b = Shard { rank: 1, size: 2 }.take(&items);
        assert_eq!(a, [0, 2, 4, 6]);
        assert_eq!(b, [1, 3, 5]);
        assert_eq!(Shard::WHOLE.take(&items), items);
    }
}
