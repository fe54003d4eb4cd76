"""Inference on XrayBench, report-generation and VQA metrics, and Report Arena."""
