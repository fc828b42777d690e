//! `baton:api/kv`: the handler's namespace in the store.

use crate::metrics::{HandlerMetrics, KvOp};
use crate::runtime::bindings::{kv, types};
use crate::runtime::state::HostState;
use crate::store::{CountOp, Expect, KvStore, StoreError, WriteOp};
use std::sync::Arc;
use tracing::Instrument;
use wasmtime::component::{HasSelf, Linker};

/// Per-instance kv state: the store and this handler's namespace.
pub struct KvState {
    store: Arc<dyn KvStore>,
    namespace: Arc<str>,
    metrics: Arc<HandlerMetrics>,
    /// Whether this instance wrote anything (so the host flushes before replying).
    pub wrote: bool,
}

impl KvState {
    /// State for an instance of the handler whose namespace is `namespace`
    /// (its operations counted in `metrics`).
    pub fn new(store: Arc<dyn KvStore>, namespace: Arc<str>, metrics: Arc<HandlerMetrics>) -> Self {
        KvState {
            store,
            namespace,
            metrics,
            wrote: false,
        }
    }
}

/// Registers `baton:api/kv`.
pub fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    kv::add_to_linker::<HostState, HasSelf<KvState>>(linker, |s| &mut s.kv)
}

type Res<T> = wasmtime::Result<Result<T, types::Error>>;

fn wit_error(e: StoreError) -> types::Error {
    match e {
        StoreError::Invalid(m) => types::Error::Invalid(m),
        StoreError::Unavailable(m) => {
            tracing::warn!("kv backend unavailable: {m}");
            types::Error::Unavailable(m)
        }
        StoreError::Backend(m) => {
            tracing::error!("kv backend failure: {m}");
            types::Error::Internal(m)
        }
    }
}

/// The store's form of a batch's writes.
fn store_writes(ops: Vec<kv::WriteOp>) -> Vec<WriteOp> {
    ops.into_iter()
        .map(|o| WriteOp {
            bucket: o.bucket,
            key: o.key,
            value: o.value,
        })
        .collect()
}

impl kv::Host for KvState {
    async fn get(&mut self, bucket: String, key: String) -> Res<Option<Vec<u8>>> {
        self.metrics.kv(KvOp::Get);
        Ok(self
            .store
            .get(&self.namespace, &bucket, &key)
            .instrument(tracing::debug_span!("kv.get", bucket = %bucket))
            .await
            .map_err(wit_error))
    }

    async fn set(&mut self, bucket: String, key: String, value: Vec<u8>) -> Res<()> {
        self.metrics.kv(KvOp::Set);
        self.wrote = true;
        Ok(self
            .store
            .set(&self.namespace, &bucket, &key, &value)
            .instrument(tracing::debug_span!("kv.set", bucket = %bucket))
            .await
            .map_err(wit_error))
    }

    async fn delete(&mut self, bucket: String, key: String) -> Res<bool> {
        self.metrics.kv(KvOp::Delete);
        self.wrote = true;
        Ok(self
            .store
            .delete(&self.namespace, &bucket, &key)
            .instrument(tracing::debug_span!("kv.delete", bucket = %bucket))
            .await
            .map_err(wit_error))
    }

    async fn compare_and_swap(
        &mut self,
        bucket: String,
        key: String,
        expected: Option<Vec<u8>>,
        new: Option<Vec<u8>>,
    ) -> Res<bool> {
        self.wrote = true;
        self.metrics.kv(KvOp::CompareAndSwap);
        Ok(self
            .store
            .compare_and_swap(
                &self.namespace,
                &bucket,
                &key,
                expected.as_deref(),
                new.as_deref(),
            )
            .instrument(tracing::debug_span!("kv.compare-and-swap", bucket = %bucket))
            .await
            .map_err(wit_error))
    }

    async fn scan(
        &mut self,
        bucket: String,
        prefix: String,
        start_after: Option<String>,
        limit: u32,
    ) -> Res<Vec<(String, Vec<u8>)>> {
        self.metrics.kv(KvOp::Scan);
        Ok(self
            .store
            .scan(
                &self.namespace,
                &bucket,
                &prefix,
                start_after.as_deref(),
                limit as usize,
            )
            .instrument(tracing::debug_span!("kv.scan", bucket = %bucket))
            .await
            .map_err(wit_error))
    }

    async fn increment(&mut self, bucket: String, key: String, delta: i64) -> Res<i64> {
        self.metrics.kv(KvOp::Increment);
        self.wrote = true;
        Ok(self
            .store
            .increment(&self.namespace, &bucket, &key, delta)
            .instrument(tracing::debug_span!("kv.increment", bucket = %bucket))
            .await
            .map_err(wit_error))
    }

    async fn apply(&mut self, ops: Vec<kv::WriteOp>) -> Res<()> {
        self.metrics.kv(KvOp::Apply);
        self.wrote = true;
        let ops = store_writes(ops);
        Ok(self
            .store
            .apply(&self.namespace, &ops)
            .instrument(tracing::debug_span!("kv.apply", writes = ops.len()))
            .await
            .map_err(wit_error))
    }

    async fn apply_if(
        &mut self,
        expect: Vec<kv::ExpectOp>,
        writes: Vec<kv::WriteOp>,
        counts: Vec<kv::CountOp>,
    ) -> Res<Option<Vec<i64>>> {
        self.wrote = true;
        self.metrics.kv(KvOp::ApplyIf);
        let expect: Vec<Expect> = expect
            .into_iter()
            .map(|e| Expect {
                bucket: e.bucket,
                key: e.key,
                value: e.value,
            })
            .collect();
        let writes = store_writes(writes);
        let counts: Vec<CountOp> = counts
            .into_iter()
            .map(|c| CountOp {
                bucket: c.bucket,
                key: c.key,
                delta: c.delta,
            })
            .collect();
        Ok(self
            .store
            .apply_if(&self.namespace, &expect, &writes, &counts)
            .instrument(tracing::debug_span!("kv.apply-if", writes = writes.len()))
            .await
            .map_err(wit_error))
    }
}
