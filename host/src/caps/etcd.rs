//! `sonde:probe/etcd`: keys and values in the cluster's etcd. The grant check
//! (key prefixes) is in place; the client lands with the active-probing work,
//! so a granted call answers `unavailable` until then.

use crate::bindings::ProbeError;
use crate::bindings::sonde::probe::etcd::{Host, KeyValue};
use crate::runtime::RunState;

impl RunState {
    fn etcd_call<T>(&mut self, op: &str, key: &[u8]) -> Result<T, ProbeError> {
        if !self.ctx.grants.allows_etcd(key) {
            let detail = format!("{op} {}", String::from_utf8_lossy(key));
            return Err(ProbeError::Denied(self.ctx.deny("etcd", detail)));
        }
        Err(ProbeError::Unavailable(
            "the etcd capability is not available in this version of the host".into(),
        ))
    }
}

impl Host for RunState {
    async fn get(
        &mut self,
        key: Vec<u8>,
    ) -> wasmtime::Result<Result<Option<KeyValue>, ProbeError>> {
        Ok(self.etcd_call("get", &key))
    }

    async fn range(
        &mut self,
        prefix: Vec<u8>,
        _limit: u32,
    ) -> wasmtime::Result<Result<Vec<KeyValue>, ProbeError>> {
        Ok(self.etcd_call("range", &prefix))
    }

    async fn put(
        &mut self,
        key: Vec<u8>,
        _value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), ProbeError>> {
        Ok(self.etcd_call("put", &key))
    }

    async fn delete(&mut self, key: Vec<u8>) -> wasmtime::Result<Result<u64, ProbeError>> {
        Ok(self.etcd_call("delete", &key))
    }
}
