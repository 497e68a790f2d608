"""A hand-written JSON schema of the KEDA 2.x custom resources the manifests use
(``keda.sh/v1alpha1`` ScaledObject and TriggerAuthentication), written from KEDA's
documented spec, not its CRD: kubernetes-validate bundles only the built-in kinds, and the
tests run offline. It is strict where typos hide (no unknown fields, trigger metadata values
are strings as the CRD requires, the fields each scaler needs), and says nothing about what
the manifests do not use (``fallback``, ``scalingModifiers``, other authentication sources are
only allowed). The HPA ``behavior`` inside is checked against Kubernetes' own schema by the
test."""

from __future__ import annotations

from typing import Any

_NAME = {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "maxLength": 253}
_METADATA = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": _NAME,
        "namespace": _NAME,
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
    },
    "additionalProperties": False,
}
_NUMBER_STRING = {"type": "string", "pattern": r"^[0-9]+(\.[0-9]+)?$"}

_TRIGGER: dict[str, Any] = {
    "type": "object",
    "required": ["type", "metadata"],
    "properties": {
        "type": {"type": "string"},
        "name": _NAME,
        "metricType": {"enum": ["AverageValue", "Value", "Utilization"]},
        "useCachedMetrics": {"type": "boolean"},
        "metadata": {"type": "object", "additionalProperties": {"type": "string"}},
        "authenticationRef": {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": _NAME,
                "kind": {"enum": ["TriggerAuthentication", "ClusterTriggerAuthentication"]},
            },
            "additionalProperties": False,
        },
    },
    "additionalProperties": False,
    "allOf": [
        {
            # postgresql: a query returning one number, a target, and a connection from
            # the authentication (connection, or host/port/userName/dbName/sslmode).
            "if": {"properties": {"type": {"const": "postgresql"}}},
            "then": {
                "required": ["authenticationRef"],
                "properties": {
                    "metadata": {
                        "required": ["query", "targetQueryValue"],
                        "properties": {
                            "query": {"type": "string", "minLength": 1},
                            "targetQueryValue": _NUMBER_STRING,
                            "activationTargetQueryValue": _NUMBER_STRING,
                        },
                        "propertyNames": {
                            "enum": [
                                "query",
                                "targetQueryValue",
                                "activationTargetQueryValue",
                                "host",
                                "port",
                                "userName",
                                "dbName",
                                "sslmode",
                                "connectionFromEnv",
                                "passwordFromEnv",
                            ]
                        },
                    }
                },
            },
        },
        {
            "if": {"properties": {"type": {"const": "prometheus"}}},
            "then": {
                "properties": {
                    "metadata": {
                        "required": ["serverAddress", "query", "threshold"],
                        "properties": {
                            "serverAddress": {"type": "string", "pattern": "^https?://"},
                            "threshold": _NUMBER_STRING,
                            "activationThreshold": _NUMBER_STRING,
                        },
                    }
                },
            },
        },
    ],
}

SCALED_OBJECT: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "keda.sh/v1alpha1"},
        "kind": {"const": "ScaledObject"},
        "metadata": _METADATA,
        "spec": {
            "type": "object",
            "required": ["scaleTargetRef", "triggers"],
            "properties": {
                "scaleTargetRef": {
                    "type": "object",
                    "required": ["name"],
                    "properties": {
                        "name": _NAME,
                        "apiVersion": {"type": "string"},
                        "kind": {"type": "string"},
                        "envSourceContainerName": {"type": "string"},
                    },
                    "additionalProperties": False,
                },
                "pollingInterval": {"type": "integer", "minimum": 1},
                "initialCooldownPeriod": {"type": "integer", "minimum": 0},
                "cooldownPeriod": {"type": "integer", "minimum": 0},
                "idleReplicaCount": {"type": "integer", "minimum": 0},
                "minReplicaCount": {"type": "integer", "minimum": 0},
                "maxReplicaCount": {"type": "integer", "minimum": 1},
                "fallback": {"type": "object"},
                "advanced": {
                    "type": "object",
                    "properties": {
                        "restoreToOriginalReplicaCount": {"type": "boolean"},
                        "horizontalPodAutoscalerConfig": {
                            "type": "object",
                            "properties": {"name": _NAME, "behavior": {"type": "object"}},
                            "additionalProperties": False,
                        },
                        "scalingModifiers": {"type": "object"},
                    },
                    "additionalProperties": False,
                },
                "triggers": {"type": "array", "minItems": 1, "items": _TRIGGER},
            },
            "additionalProperties": False,
        },
    },
    "additionalProperties": False,
}

_SECRET_TARGET = {
    "type": "object",
    "required": ["parameter", "name", "key"],
    "properties": {"parameter": {"type": "string"}, "name": _NAME, "key": {"type": "string"}},
    "additionalProperties": False,
}

TRIGGER_AUTHENTICATION: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "keda.sh/v1alpha1"},
        "kind": {"const": "TriggerAuthentication"},
        "metadata": _METADATA,
        "spec": {
            "type": "object",
            "minProperties": 1,
            "properties": {
                "secretTargetRef": {"type": "array", "minItems": 1, "items": _SECRET_TARGET},
                "env": {"type": "array"},
                "configMapTargetRef": {"type": "array"},
                "podIdentity": {"type": "object"},
                "hashiCorpVault": {"type": "object"},
                "azureKeyVault": {"type": "object"},
                "awsSecretManager": {"type": "object"},
                "gcpSecretManager": {"type": "object"},
                "boundServiceAccountToken": {"type": "array"},
            },
            "additionalProperties": False,
        },
    },
    "additionalProperties": False,
}

SCHEMAS = {"ScaledObject": SCALED_OBJECT, "TriggerAuthentication": TRIGGER_AUTHENTICATION}
