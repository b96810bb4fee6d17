//! FundWatch's end-to-end tests, in one test binary.
//!
//! Every test here links the whole product (DataFusion, librdkafka, axum); one
//! binary instead of one per file keeps the debug build to a single link and a
//! few hundred megabytes on disk instead of several gigabytes.

mod http_support;
mod ops_support;
mod registry_support;
mod support;

mod backtest_pack_diff;
mod check_cli;
mod check_history;
mod check_history_restart;
mod check_person_status;
mod demo_labelled_stream;
mod http_3101_round_trip;
mod http_auth;
mod http_fail_open;
mod http_mtls;
mod kafka_at_least_once;
mod kafka_dlq;
mod kafka_faults;
mod kafka_history;
mod kafka_rebalance;
mod kafka_serve;
mod ops_deploy;
mod ops_metrics;
mod ops_prometheus;
mod registry_batch8_live;
mod registry_shadow;
mod registry_swap_under_load;
mod rule_gates;
mod rule_pack_cases;
