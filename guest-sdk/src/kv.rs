//! Typed key-value storage, namespaced per handler.
//!
//! ```no_run
//! use baton_sdk::kv::Bucket;
//! #[derive(serde::Serialize, serde::Deserialize)]
//! struct Node { name: String }
//!
//! let nodes = Bucket::open("nodes");
//! nodes.set_json("web-1", &Node { name: "web-1".into() })?;
//! let node: Option<Node> = nodes.get_json("web-1")?;
//! # Ok::<(), baton_sdk::HostError>(())
//! ```

use crate::HostError;
use crate::bindings::baton::api::kv as wit;
use serde::{Serialize, de::DeserializeOwned};

/// A named bucket in this handler's namespace. Opening is free: buckets
/// exist as soon as a key is written to them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bucket {
    name: String,
}

/// One write of an atomic [`apply`] batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    /// The bucket written to.
    pub bucket: String,
    /// The key written.
    pub key: String,
    /// The new value, or `None` to delete.
    pub value: Option<Vec<u8>>,
}

/// A condition of an [`apply_if`] batch: `key` holds exactly `value`
/// (`None` = absent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expect {
    /// The bucket read.
    pub bucket: String,
    /// The key read.
    pub key: String,
    /// The value it must hold, or `None` for absent.
    pub value: Option<Vec<u8>>,
}

/// A counter change of an [`apply_if`] batch, as [`Bucket::increment`] makes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Count {
    /// The bucket of the counter.
    pub bucket: String,
    /// The counter's key.
    pub key: String,
    /// What is added (negative to subtract).
    pub delta: i64,
}

impl Bucket {
    /// The bucket called `name`.
    ///
    /// ```
    /// let nodes = baton_sdk::kv::Bucket::open("nodes");
    /// assert_eq!(nodes.name(), "nodes");
    /// ```
    pub fn open(name: &str) -> Self {
        Bucket {
            name: name.to_string(),
        }
    }

    /// The bucket's name.
    ///
    /// ```
    /// assert_eq!(baton_sdk::kv::Bucket::open("jobs").name(), "jobs");
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The raw value at `key`.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), baton_sdk::HostError> {
    /// let raw: Option<Vec<u8>> = baton_sdk::kv::Bucket::open("blobs").get("logo")?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>, HostError> {
        Ok(wit::get(&self.name, key)?)
    }

    /// Stores raw bytes at `key`.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), baton_sdk::HostError> {
    /// baton_sdk::kv::Bucket::open("blobs").set("logo", b"\x89PNG")?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn set(&self, key: &str, value: &[u8]) -> Result<(), HostError> {
        Ok(wit::set(&self.name, key, value)?)
    }

    /// Deletes `key`; returns whether it existed.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), baton_sdk::HostError> {
    /// let existed = baton_sdk::kv::Bucket::open("nodes").delete("web-1")?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn delete(&self, key: &str) -> Result<bool, HostError> {
        Ok(wit::delete(&self.name, key)?)
    }

    /// The value at `key` decoded from JSON.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), baton_sdk::HostError> {
    /// #[derive(serde::Deserialize)]
    /// struct Node { os: String }
    /// let node: Option<Node> = baton_sdk::kv::Bucket::open("nodes").get_json("web-1")?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn get_json<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, HostError> {
        match self.get(key)? {
            None => Ok(None),
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| HostError::Decode(format!("{}/{key}: {e}", self.name))),
        }
    }

    /// Stores `value` as JSON at `key`.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), baton_sdk::HostError> {
    /// baton_sdk::kv::Bucket::open("nodes").set_json("web-1", &serde_json::json!({"os": "debian"}))?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn set_json<T: Serialize>(&self, key: &str, value: &T) -> Result<(), HostError> {
        self.set(key, &to_json(value)?)
    }

    /// Writes `new` only if the current value is `expected` (`None` = absent).
    /// Returns whether the write happened.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), baton_sdk::HostError> {
    /// let jobs = baton_sdk::kv::Bucket::open("jobs");
    /// // Claim the key only if nobody did.
    /// let claimed = jobs.compare_and_swap("lock", None, Some(b"me".as_slice()))?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        new: Option<&[u8]>,
    ) -> Result<bool, HostError> {
        Ok(wit::compare_and_swap(&self.name, key, expected, new)?)
    }

    /// Adds `delta` to the counter at `key` (absent = 0) and returns the new value.
    /// Handy for sequential names: `bucket.increment("next-job", 1)`.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), baton_sdk::HostError> {
    /// let name = baton_sdk::kv::Bucket::open("seq").increment("jobs", 1)?; // 1, 2, 3…
    /// # Ok(())
    /// # }
    /// ```
    pub fn increment(&self, key: &str, delta: i64) -> Result<i64, HostError> {
        Ok(wit::increment(&self.name, key, delta)?)
    }

    /// Up to `limit` entries whose key starts with `prefix`, in key order,
    /// strictly after `start_after` when given.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), baton_sdk::HostError> {
    /// let nodes = baton_sdk::kv::Bucket::open("nodes");
    /// let first = nodes.scan("web-", None, 50)?;
    /// let next = nodes.scan("web-", first.last().map(|(k, _)| k.as_str()), 50)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn scan(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<(String, Vec<u8>)>, HostError> {
        Ok(wit::scan(&self.name, prefix, start_after, limit)?)
    }

    /// Every entry whose key starts with `prefix`, decoded from JSON, paging
    /// through the host's scan limit.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), baton_sdk::HostError> {
    /// let all: Vec<(String, serde_json::Value)> = baton_sdk::kv::Bucket::open("nodes").scan_all_json("")?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn scan_all_json<T: DeserializeOwned>(
        &self,
        prefix: &str,
    ) -> Result<Vec<(String, T)>, HostError> {
        const PAGE: u32 = 500;
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self.scan(prefix, after.as_deref(), PAGE)?;
            let full = page.len() as u32 == PAGE;
            for (key, bytes) in page {
                let value = serde_json::from_slice(&bytes)
                    .map_err(|e| HostError::Decode(format!("{}/{key}: {e}", self.name)))?;
                after = Some(key.clone());
                out.push((key, value));
            }
            if !full {
                return Ok(out);
            }
        }
    }

    /// A write of `value` as JSON at `key`, for [`apply`].
    ///
    /// ```no_run
    /// # fn main() -> Result<(), baton_sdk::HostError> {
    /// use baton_sdk::kv::{self, Bucket};
    /// let (jobs, index) = (Bucket::open("jobs"), Bucket::open("by-owner"));
    /// kv::apply(vec![
    ///     jobs.write_json("81", &serde_json::json!({"owner": "ann"}))?,
    ///     index.write_json("ann/81", &true)?,
    /// ])?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn write_json<T: Serialize>(&self, key: &str, value: &T) -> Result<Write, HostError> {
        Ok(Write {
            bucket: self.name.clone(),
            key: key.to_string(),
            value: Some(to_json(value)?),
        })
    }

    /// The condition "`key` holds exactly `value`" (`None`: absent), for [`apply_if`].
    ///
    /// ```
    /// let e = baton_sdk::kv::Bucket::open("jobs").expect("81", Some(b"old"));
    /// assert_eq!(e.value.as_deref(), Some(&b"old"[..]));
    /// ```
    pub fn expect(&self, key: &str, value: Option<&[u8]>) -> Expect {
        Expect {
            bucket: self.name.clone(),
            key: key.to_string(),
            value: value.map(<[u8]>::to_vec),
        }
    }

    /// Adding `delta` to the counter at `key`, for [`apply_if`].
    ///
    /// ```
    /// let c = baton_sdk::kv::Bucket::open("tallies").count("81/running", 1);
    /// assert_eq!(c.delta, 1);
    /// ```
    pub fn count(&self, key: &str, delta: i64) -> Count {
        Count {
            bucket: self.name.clone(),
            key: key.to_string(),
            delta,
        }
    }

    /// A deletion of `key`, for [`apply`].
    ///
    /// ```
    /// let w = baton_sdk::kv::Bucket::open("jobs").write_delete("81");
    /// // Pass it to `kv::apply` with other writes.
    /// ```
    pub fn write_delete(&self, key: &str) -> Write {
        Write {
            bucket: self.name.clone(),
            key: key.to_string(),
            value: None,
        }
    }
}

/// Applies every write, across buckets, atomically: all or none.
///
/// ```no_run
/// # fn main() -> Result<(), baton_sdk::HostError> {
/// use baton_sdk::kv::{self, Bucket};
/// let b = Bucket::open("nodes");
/// kv::apply(vec![b.write_json("web-2", &"new")?, b.write_delete("web-1")])?; // both or neither
/// # Ok(())
/// # }
/// ```
pub fn apply(writes: Vec<Write>) -> Result<(), HostError> {
    Ok(wit::apply(&wit_writes(writes))?)
}

/// A compare-and-swap across keys: if every `expect` holds, applies
/// `writes` and then `counts` together, atomically, and returns the
/// counters' new values in order; otherwise changes nothing and returns
/// `None` (read again and retry). Use it to keep a tally or an index in
/// step with the record it counts, even across a crash.
///
/// ```no_run
/// # fn main() -> Result<(), baton_sdk::HostError> {
/// use baton_sdk::kv::{self, Bucket};
/// let (nodes, tally) = (Bucket::open("nodes"), Bucket::open("tally"));
/// let old = nodes.get("web-1")?;
/// let moved = kv::apply_if(
///     vec![nodes.expect("web-1", old.as_deref())],
///     vec![nodes.write_json("web-1", &"running")?],
///     vec![tally.count("running", 1), tally.count("ready", -1)],
/// )?;
/// if let Some(counts) = moved {
///     println!("{} running now", counts[0]);
/// }
/// # Ok(())
/// # }
/// ```
pub fn apply_if(
    expect: Vec<Expect>,
    writes: Vec<Write>,
    counts: Vec<Count>,
) -> Result<Option<Vec<i64>>, HostError> {
    let expect: Vec<wit::ExpectOp> = expect
        .into_iter()
        .map(|e| wit::ExpectOp {
            bucket: e.bucket,
            key: e.key,
            value: e.value,
        })
        .collect();
    let writes = wit_writes(writes);
    let counts: Vec<wit::CountOp> = counts
        .into_iter()
        .map(|c| wit::CountOp {
            bucket: c.bucket,
            key: c.key,
            delta: c.delta,
        })
        .collect();
    Ok(wit::apply_if(&expect, &writes, &counts)?)
}

/// The host's form of a batch's writes.
fn wit_writes(writes: Vec<Write>) -> Vec<wit::WriteOp> {
    writes
        .into_iter()
        .map(|w| wit::WriteOp {
            bucket: w.bucket,
            key: w.key,
            value: w.value,
        })
        .collect()
}

fn to_json<T: Serialize>(value: &T) -> Result<Vec<u8>, HostError> {
    serde_json::to_vec(value).map_err(|e| HostError::Invalid(format!("value is not JSON: {e}")))
}
