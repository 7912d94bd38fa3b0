//! A store that fails one kind of write, as a full disk would fail it,
//! for tests of what its callers do then (feature `test-support`).

use async_trait::async_trait;
use clemmys_whisk::{
    Action, Activation, ActivationId, EntityName, NamespaceRecord, Package, Rule, Trigger,
};

use crate::{ActivationFilter, EntityStore, PutMode, RedbStore, StoreError};

/// Which writes fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failing {
    /// `put_stand_in`: an acknowledgement cannot be made durable.
    StandIns,
    /// `put_activation`: a finished activation's record is lost.
    ActivationRecords,
}

/// A real store whose `failing` writes fail; everything else reaches it.
pub struct FailingWrites {
    inner: RedbStore,
    failing: Failing,
}

impl FailingWrites {
    /// `inner`, with its `failing` writes failing.
    pub fn new(inner: RedbStore, failing: Failing) -> Self {
        Self { inner, failing }
    }
}

fn disk_full() -> StoreError {
    StoreError::Backend("no space left on device".into())
}

#[async_trait]
impl EntityStore for FailingWrites {
    async fn put_namespace(&self, record: NamespaceRecord) -> Result<(), StoreError> {
        self.inner.put_namespace(record).await
    }
    async fn get_namespace(
        &self,
        name: &EntityName,
    ) -> Result<Option<NamespaceRecord>, StoreError> {
        self.inner.get_namespace(name).await
    }
    async fn find_namespace_by_uuid(
        &self,
        uuid: &str,
    ) -> Result<Option<NamespaceRecord>, StoreError> {
        self.inner.find_namespace_by_uuid(uuid).await
    }
    async fn list_namespaces(&self) -> Result<Vec<NamespaceRecord>, StoreError> {
        self.inner.list_namespaces().await
    }
    async fn put_package(&self, package: Package, mode: PutMode) -> Result<(), StoreError> {
        self.inner.put_package(package, mode).await
    }
    async fn get_package(
        &self,
        namespace: &EntityName,
        name: &EntityName,
    ) -> Result<Option<Package>, StoreError> {
        self.inner.get_package(namespace, name).await
    }
    async fn delete_package(
        &self,
        namespace: &EntityName,
        name: &EntityName,
    ) -> Result<Option<Package>, StoreError> {
        self.inner.delete_package(namespace, name).await
    }
    async fn list_packages(
        &self,
        namespace: &EntityName,
        skip: usize,
        limit: usize,
    ) -> Result<Vec<Package>, StoreError> {
        self.inner.list_packages(namespace, skip, limit).await
    }
    async fn put_trigger(&self, trigger: Trigger, mode: PutMode) -> Result<(), StoreError> {
        self.inner.put_trigger(trigger, mode).await
    }
    async fn get_trigger(
        &self,
        namespace: &EntityName,
        name: &EntityName,
    ) -> Result<Option<Trigger>, StoreError> {
        self.inner.get_trigger(namespace, name).await
    }
    async fn delete_trigger(
        &self,
        namespace: &EntityName,
        name: &EntityName,
    ) -> Result<Option<Trigger>, StoreError> {
        self.inner.delete_trigger(namespace, name).await
    }
    async fn list_triggers(
        &self,
        namespace: &EntityName,
        skip: usize,
        limit: usize,
    ) -> Result<Vec<Trigger>, StoreError> {
        self.inner.list_triggers(namespace, skip, limit).await
    }
    async fn put_rule(&self, rule: Rule, mode: PutMode) -> Result<(), StoreError> {
        self.inner.put_rule(rule, mode).await
    }
    async fn get_rule(
        &self,
        namespace: &EntityName,
        name: &EntityName,
    ) -> Result<Option<Rule>, StoreError> {
        self.inner.get_rule(namespace, name).await
    }
    async fn delete_rule(
        &self,
        namespace: &EntityName,
        name: &EntityName,
    ) -> Result<Option<Rule>, StoreError> {
        self.inner.delete_rule(namespace, name).await
    }
    async fn list_rules(
        &self,
        namespace: &EntityName,
        skip: usize,
        limit: usize,
    ) -> Result<Vec<Rule>, StoreError> {
        self.inner.list_rules(namespace, skip, limit).await
    }
    async fn get_package_action(
        &self,
        namespace: &EntityName,
        package: &EntityName,
        name: &EntityName,
    ) -> Result<Option<Action>, StoreError> {
        self.inner
            .get_package_action(namespace, package, name)
            .await
    }
    async fn get_package_code(
        &self,
        namespace: &EntityName,
        package: &EntityName,
        name: &EntityName,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get_package_code(namespace, package, name).await
    }
    async fn delete_package_action(
        &self,
        namespace: &EntityName,
        package: &EntityName,
        name: &EntityName,
    ) -> Result<Option<Action>, StoreError> {
        self.inner
            .delete_package_action(namespace, package, name)
            .await
    }
    async fn list_package_actions(
        &self,
        namespace: &EntityName,
        package: &EntityName,
        skip: usize,
        limit: usize,
    ) -> Result<Vec<Action>, StoreError> {
        self.inner
            .list_package_actions(namespace, package, skip, limit)
            .await
    }
    async fn put_action(
        &self,
        action: Action,
        code: Option<Vec<u8>>,
        mode: PutMode,
    ) -> Result<(), StoreError> {
        self.inner.put_action(action, code, mode).await
    }
    async fn get_action(
        &self,
        namespace: &EntityName,
        name: &EntityName,
    ) -> Result<Option<Action>, StoreError> {
        self.inner.get_action(namespace, name).await
    }
    async fn get_code(
        &self,
        namespace: &EntityName,
        name: &EntityName,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get_code(namespace, name).await
    }
    async fn delete_action(
        &self,
        namespace: &EntityName,
        name: &EntityName,
    ) -> Result<Option<Action>, StoreError> {
        self.inner.delete_action(namespace, name).await
    }
    async fn list_actions(
        &self,
        namespace: &EntityName,
        skip: usize,
        limit: usize,
    ) -> Result<Vec<Action>, StoreError> {
        self.inner.list_actions(namespace, skip, limit).await
    }
    async fn count_actions(&self, namespace: &EntityName) -> Result<usize, StoreError> {
        self.inner.count_actions(namespace).await
    }
    async fn put_activation(&self, activation: Activation) -> Result<(), StoreError> {
        match self.failing {
            Failing::ActivationRecords => Err(disk_full()),
            Failing::StandIns => self.inner.put_activation(activation).await,
        }
    }
    async fn put_stand_in(&self, stand_in: Activation) -> Result<(), StoreError> {
        match self.failing {
            Failing::StandIns => Err(disk_full()),
            Failing::ActivationRecords => self.inner.put_stand_in(stand_in).await,
        }
    }
    async fn settle_interrupted(&self) -> Result<usize, StoreError> {
        self.inner.settle_interrupted().await
    }
    async fn get_activation(
        &self,
        namespace: &str,
        id: &ActivationId,
    ) -> Result<Option<Activation>, StoreError> {
        self.inner.get_activation(namespace, id).await
    }
    async fn list_activations(
        &self,
        namespace: &str,
        filter: &ActivationFilter,
    ) -> Result<Vec<Activation>, StoreError> {
        self.inner.list_activations(namespace, filter).await
    }
    async fn count_activations(
        &self,
        namespace: &str,
        filter: &ActivationFilter,
    ) -> Result<usize, StoreError> {
        self.inner.count_activations(namespace, filter).await
    }
}
