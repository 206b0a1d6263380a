"""Configuration: TOML -> frozen dataclasses, with every problem reported at once."""

from keepwarm.config.schema import (
    AccountConfig,
    Config,
    ContactsConfig,
    DaemonConfig,
    DetectConfig,
    DigestConfig,
    ModelConfig,
    OwnerConfig,
    SmtpConfig,
    StoreConfig,
    TierConfig,
    WeightsConfig,
)

__all__ = [
    "AccountConfig",
    "Config",
    "ContactsConfig",
    "DaemonConfig",
    "DetectConfig",
    "DigestConfig",
    "ModelConfig",
    "OwnerConfig",
    "SmtpConfig",
    "StoreConfig",
    "TierConfig",
    "WeightsConfig",
]
