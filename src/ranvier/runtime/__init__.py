"""The runtime: durable pipelines (`Axon`) that checkpoint every step."""

from __future__ import annotations

from ranvier.runtime.app import App
from ranvier.runtime.axon import Axon
from ranvier.runtime.checkpoint import CheckpointPolicy, OnFailure, RetryPolicy
from ranvier.runtime.compensation import CompensationResult, Compensator, compensation_key
from ranvier.runtime.context import StepContext
from ranvier.runtime.control import cancel, compensate
from ranvier.runtime.lease import LeaseSettings
from ranvier.runtime.outcome import Outcome
from ranvier.runtime.plan import Migration
from ranvier.runtime.recovery import RecoveredTrace, RecoveryAction, RecoveryReport, recover
from ranvier.runtime.result import RunResult, RunStatus

__all__ = [
    "App",
    "Axon",
    "CheckpointPolicy",
    "CompensationResult",
    "Compensator",
    "LeaseSettings",
    "Migration",
    "OnFailure",
    "Outcome",
    "RecoveredTrace",
    "RecoveryAction",
    "RecoveryReport",
    "RetryPolicy",
    "RunResult",
    "RunStatus",
    "StepContext",
    "cancel",
    "compensate",
    "compensation_key",
    "recover",
]
