//! `baton:api/jobs`: declared now; the durable job engine arrives with its
//! own issue. Until then every call answers `unavailable`, clearly.

use super::unavailable;
use crate::runtime::bindings::{jobs, types};
use crate::runtime::state::HostState;
use wasmtime::component::{HasSelf, Linker};

/// Per-instance jobs state (empty until the engine lands).
#[derive(Default)]
pub struct JobsState {}

/// Registers `baton:api/jobs`.
pub fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    jobs::add_to_linker::<HostState, HasSelf<JobsState>>(linker, |s| &mut s.jobs)
}

type Res<T> = wasmtime::Result<Result<T, types::Error>>;

impl jobs::Host for JobsState {
    async fn spawn(&mut self, _spec: jobs::JobSpec) -> Res<String> {
        Ok(Err(unavailable("the job engine")))
    }
    async fn spawn_graph(&mut self, _: Vec<jobs::JobSpec>, _: u32, _: bool) -> Res<Vec<String>> {
        Ok(Err(unavailable("the job engine")))
    }
    async fn get(&mut self, _id: String) -> Res<Option<jobs::JobInfo>> {
        Ok(Err(unavailable("the job engine")))
    }
    async fn list(&mut self, _filter: jobs::JobFilter) -> Res<Vec<jobs::JobInfo>> {
        Ok(Err(unavailable("the job engine")))
    }
    async fn cancel(&mut self, _id: String) -> Res<()> {
        Ok(Err(unavailable("the job engine")))
    }
    async fn events(&mut self, _id: String, _after: u64, _limit: u32) -> Res<Vec<jobs::JobEvent>> {
        Ok(Err(unavailable("the job engine")))
    }
    async fn progress(
        &mut self,
        _message: String,
        _done: u32,
        _total: u32,
    ) -> wasmtime::Result<()> {
        Ok(())
    }
    async fn exec(&mut self, _cmd: jobs::Command) -> Res<jobs::CommandOutput> {
        Ok(Err(unavailable("exec (it runs inside jobs)")))
    }
}
