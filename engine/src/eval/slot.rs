//! Event tables as plan leaves that read "the current batch" at execution time.
//!
//! A rule is planned once per (pack, KB) version. Its leaves are [`SlotExec`]s: they
//! hold no data; at `execute` they take the batch from the [`TaskContext`]'s config
//! extension ([`CurrentBatch`]). So one compiled plan serves every micro-batch, on any
//! thread, with no shared mutable slot — each evaluation brings its own batch in its
//! own `TaskContext` (Arroyo's `StatelessPhysicalExecutor` idea, without the lock).

use std::fmt;
use std::sync::Arc;

use arrow::array::{AsArray, BooleanArray, RecordBatch};
use arrow::compute::filter_record_batch;
use arrow::datatypes::{Int64Type, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{Expr, TableType};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::memory::MemoryStream;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
    SendableRecordBatchStream,
};

use crate::batch::{EventBatch, TableName, table_schema};

/// The batch being evaluated, carried as a `SessionConfig` extension.
#[derive(Debug)]
pub struct CurrentBatch {
    /// The tables.
    pub batch: Arc<EventBatch>,
    /// When set, the plan sees only the rows of the events marked true (a rule's
    /// gate narrowed the batch, see `gate.rs`).
    pub events: Option<Arc<[bool]>>,
}

/// A table provider for one event table; its scans are [`SlotExec`]s.
#[derive(Debug)]
pub struct SlotTable {
    table: TableName,
    schema: SchemaRef,
}

impl SlotTable {
    /// The provider for `table`.
    pub fn new(table: TableName) -> Self {
        Self {
            table,
            schema: table_schema(table),
        }
    }
}

#[async_trait]
impl TableProvider for SlotTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Temporary
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(Arc::new(SlotExec::new(self.table, projection.cloned())?))
    }
}

/// Leaf that yields the current batch's table `table` (projected).
#[derive(Debug)]
pub struct SlotExec {
    table: TableName,
    projection: Option<Vec<usize>>,
    properties: Arc<PlanProperties>,
}

impl SlotExec {
    fn new(table: TableName, projection: Option<Vec<usize>>) -> Result<Self> {
        let full = table_schema(table);
        let schema = match &projection {
            Some(indices) => Arc::new(full.project(indices)?),
            None => full,
        };
        let properties = PlanProperties::new(
            EquivalenceProperties::new(schema),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Incremental,
            Boundedness::Bounded,
        );
        Ok(Self {
            table,
            projection,
            properties: Arc::new(properties),
        })
    }
}

impl DisplayAs for SlotExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "SlotExec: table={:?}", self.table)
    }
}

impl ExecutionPlan for SlotExec {
    fn name(&self) -> &str {
        "SlotExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        Vec::new()
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        _children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn execute(
        &self,
        _partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let current = context
            .session_config()
            .get_extension::<CurrentBatch>()
            .ok_or_else(|| {
                DataFusionError::Internal("SlotExec executed without a CurrentBatch".into())
            })?;
        let full = current.batch.table(self.table);
        let mut batch = match &self.projection {
            Some(columns) => full.project(columns)?,
            None => full.clone(),
        };
        if let Some(events) = &current.events {
            batch = filter_record_batch(&batch, &rows_of(full, events)?)?;
        }
        // The stream advertises the projected schema, which is what parents expect.
        let stream = MemoryStream::try_new(vec![batch], self.schema(), None)?;
        Ok(Box::pin(stream))
    }
}

/// The rows of `table` whose `event_idx` is marked in `events`.
fn rows_of(table: &RecordBatch, events: &[bool]) -> Result<BooleanArray> {
    let column = table
        .column_by_name("event_idx")
        .ok_or_else(|| DataFusionError::Internal("an event table without event_idx".into()))?;
    let ids = column
        .as_primitive_opt::<Int64Type>()
        .ok_or_else(|| DataFusionError::Internal("event_idx is not BIGINT".into()))?;
    Ok(ids
        .iter()
        .map(|id| Some(id.is_some_and(|i| events.get(i as usize).copied().unwrap_or(false))))
        .collect())
}
