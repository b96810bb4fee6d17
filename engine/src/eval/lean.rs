//! Projections of kept plans without per-execution metrics.
//!
//! DataFusion 55's `ProjectionExec::execute` registers one timing metric per
//! expression on every call and names each by printing the expression as SQL.
//! A kept plan executes once per micro-batch, and a rule plan holds several
//! projections of ten or more expressions: in a saturated `serve` that printing
//! was about a tenth of the CPU. FundWatch never reads a kept plan's metrics, so
//! after planning each `ProjectionExec` is swapped for [`LeanProjectionExec`]: the
//! same expressions, schema and plan properties, evaluated by the same
//! [`Projector`], without the metrics.

use std::fmt;
use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::error::Result;
use datafusion::execution::TaskContext;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::projection::Projector;
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties, SendableRecordBatchStream,
    apply_expression_roots,
};
use futures::StreamExt;

/// Replaces every `ProjectionExec` of `plan` by a [`LeanProjectionExec`].
pub(crate) fn lean_projections(plan: Arc<dyn ExecutionPlan>) -> Result<Arc<dyn ExecutionPlan>> {
    plan.transform_up(|node| {
        let Some(projection) = node.downcast_ref::<ProjectionExec>() else {
            return Ok(Transformed::no(node));
        };
        let input = Arc::clone(projection.input());
        let projector = projection
            .projection_expr()
            .make_projector_with_schema_metadata(&input.schema(), &projection.schema())?;
        let lean = LeanProjectionExec {
            projector: Arc::new(projector),
            input,
            properties: Arc::clone(projection.properties()),
        };
        Ok(Transformed::yes(Arc::new(lean) as Arc<dyn ExecutionPlan>))
    })
    .map(|transformed| transformed.data)
}

/// A `ProjectionExec` that keeps no metrics (see the module docs).
#[derive(Debug)]
pub(crate) struct LeanProjectionExec {
    projector: Arc<Projector>,
    input: Arc<dyn ExecutionPlan>,
    properties: Arc<PlanProperties>,
}

impl DisplayAs for LeanProjectionExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let names: Vec<&str> = self
            .projector
            .projection()
            .as_ref()
            .iter()
            .map(|e| e.alias.as_str())
            .collect();
        write!(f, "LeanProjectionExec: [{}]", names.join(", "))
    }
}

impl ExecutionPlan for LeanProjectionExec {
    fn name(&self) -> &str {
        "LeanProjectionExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        apply_expression_roots(self.projector.projection().as_ref().iter(), f)
    }

    /// Only ever given fresh copies of the same children (`reset_plan_states`), so
    /// the properties computed at planning stay valid.
    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let input = children.pop().ok_or_else(|| {
            datafusion::error::DataFusionError::Internal(
                "LeanProjectionExec needs exactly one child".into(),
            )
        })?;
        Ok(Arc::new(Self {
            projector: Arc::clone(&self.projector),
            input,
            properties: Arc::clone(&self.properties),
        }))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let projector = Arc::clone(&self.projector);
        let batches = self
            .input
            .execute(partition, context)?
            .map(move |batch| batch.and_then(|batch| projector.project_batch(&batch)));
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            self.schema(),
            batches,
        )))
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{Int64Array, RecordBatch, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use datafusion::physical_plan::{collect, displayable};
    use datafusion::prelude::{SessionConfig, SessionContext};

    use super::*;

    #[tokio::test]
    async fn lean_plans_give_the_same_rows_and_keep_no_projection_exec() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("code", DataType::Utf8, false),
        ]));
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(Int64Array::from(vec![1, 2, 3])),
                Arc::new(StringArray::from(vec!["a", "b", "c"])),
            ],
        )
        .expect("batch");
        // One partition, as the engine's session (program.rs): no repartitioning.
        let ctx = SessionContext::new_with_config(SessionConfig::new().with_target_partitions(1));
        ctx.register_batch("t", batch).expect("register");
        let plan = ctx
            .sql("SELECT id * 10 AS x, upper(code) || '!' AS y FROM t WHERE id > 1")
            .await
            .expect("sql")
            .create_physical_plan()
            .await
            .expect("plan");
        assert!(
            displayable(plan.as_ref())
                .indent(true)
                .to_string()
                .contains("ProjectionExec")
        );

        let lean = lean_projections(Arc::clone(&plan)).expect("lean");
        let text = displayable(lean.as_ref()).indent(true).to_string();
        assert!(
            !text.contains(" ProjectionExec") && !text.starts_with("ProjectionExec"),
            "{text}"
        );
        assert!(text.contains("LeanProjectionExec"), "{text}");
        assert_eq!(lean.schema(), plan.schema());

        let expected = collect(plan, ctx.task_ctx()).await.expect("run plan");
        let got = collect(lean, ctx.task_ctx()).await.expect("run lean plan");
        assert_eq!(got, expected);
        assert_eq!(got.iter().map(RecordBatch::num_rows).sum::<usize>(), 2);
    }
}
