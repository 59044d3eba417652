//! The integration tests, in one binary: each module was once a binary of
//! its own, and each linked the whole dependency graph. `cargo test --test
//! it NAME` runs the tests whose path holds NAME (`layering`,
//! `slack_inbound::`, ...).
//!
//! They share one process: a test that reads the bot's global metrics
//! compares with what it read before, as others may add to them.

mod common;
mod fake_slack;

mod api_token;
mod blindness;
mod cap_listeners;
mod checklists;
mod cli_test_runbooks;
mod commands;
mod config_files;
mod console;
mod console_browser;
mod demo;
mod docs;
mod examples;
mod executor;
mod exposition_conformance;
mod exposition_node_exporter;
mod exposition_props;
mod hostile_input;
mod hostile_props;
mod init;
mod json_output;
mod kill_restart;
mod layering;
mod other_names;
mod pending;
mod prometheus_scrape;
mod promtool_conformance;
mod real_servers;
mod rehearse;
mod reload;
mod remote_prometheus;
mod replicas;
mod rules_diagnostics;
mod rules_engine;
mod rules_promql;
mod run_daemon;
mod runbook_actions;
mod runbook_safety;
mod sim_api;
mod sim_scenario;
mod slack_delivery;
mod slack_inbound;
mod slack_manifest;
mod validate;
