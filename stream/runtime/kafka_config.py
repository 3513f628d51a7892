"""Build the connection settings of every Kafka client from the worker's settings.

The worker talks to Kafka through two client libraries: librdkafka (confluent-kafka: the output producer,
the admin client, the feed and the demo) takes a dict of strings, Faust's aiokafka consumer and producer
take ``broker_credentials``. Both come from the same five settings (``KAFKA_SECURITY_PROTOCOL``,
``KAFKA_SASL_MECHANISM``, ``KAFKA_SASL_USERNAME``, ``KAFKA_SASL_PASSWORD``, ``KAFKA_SSL_CAFILE``), checked
here first. A setting that the chosen protocol would ignore is an error rather than a silent plaintext
connection. Without ``KAFKA_SSL_CAFILE`` TLS trusts the system's CA certificates.
"""

from __future__ import annotations

import ssl
from typing import Any

from stream.settings import Settings

SASL_PROTOCOLS = frozenset({"SASL_PLAINTEXT", "SASL_SSL"})
TLS_PROTOCOLS = frozenset({"SSL", "SASL_SSL"})


class KafkaSecurityError(ValueError):
    """Raised when the Kafka security settings are incomplete, contradict each other or name a bad file."""


def _variable(field: str) -> str:
    """Return the environment variable that sets ``field``."""
    return str(Settings.model_fields[field].alias)


def _ssl_context(settings: Settings) -> ssl.SSLContext:
    """Return a TLS client context that verifies the brokers against the CA file or the system's CAs."""
    cafile = settings.ssl_cafile
    try:
        return ssl.create_default_context(cafile=None if cafile is None else str(cafile))
    except (OSError, ssl.SSLError) as exc:
        raise KafkaSecurityError(
            f"{_variable('ssl_cafile')}={cafile} is not a readable PEM file of CA certificates: {exc}"
        ) from exc


def check_security(settings: Settings) -> None:
    """Raise KafkaSecurityError, naming the variable to fix, unless the security settings work together."""
    protocol = settings.security_protocol
    protocol_variable = f"{_variable('security_protocol')}={protocol}"
    if protocol in SASL_PROTOCOLS:
        for field in ("sasl_username", "sasl_password"):
            if not getattr(settings, field):
                raise KafkaSecurityError(f"{protocol_variable} needs {_variable(field)}")
    else:
        for field in ("sasl_username", "sasl_password"):
            if getattr(settings, field):
                raise KafkaSecurityError(
                    f"{_variable(field)} is set but {protocol_variable} does not use SASL: "
                    f"set {_variable('security_protocol')} to SASL_SSL or SASL_PLAINTEXT, or unset {_variable(field)}"
                )
    if settings.ssl_cafile is not None:
        if protocol not in TLS_PROTOCOLS:
            raise KafkaSecurityError(
                f"{_variable('ssl_cafile')} is set but {protocol_variable} does not use TLS: "
                f"set {_variable('security_protocol')} to SSL or SASL_SSL, or unset {_variable('ssl_cafile')}"
            )
        _ssl_context(settings)


def librdkafka_config(settings: Settings) -> dict[str, str]:
    """Return the librdkafka settings that reach the brokers: bootstrap servers and security.

    Every confluent-kafka client starts from these and adds its own keys on top:
    ``Producer({**librdkafka_config(settings), "linger.ms": 5})``.
    """
    check_security(settings)
    protocol = settings.security_protocol
    config = {"bootstrap.servers": settings.bootstrap_servers, "security.protocol": protocol.lower()}
    if protocol in SASL_PROTOCOLS:
        config["sasl.mechanism"] = settings.sasl_mechanism
        config["sasl.username"] = str(settings.sasl_username)
        config["sasl.password"] = str(settings.sasl_password)
    if protocol in TLS_PROTOCOLS and settings.ssl_cafile is not None:
        config["ssl.ca.location"] = str(settings.ssl_cafile)
    return config


def faust_broker_settings(settings: Settings) -> dict[str, Any]:
    """Return the ``faust.App`` keyword arguments that give its aiokafka clients the same security.

    That is ``broker_credentials``: SASL credentials (with a TLS context for SASL_SSL) or TLS credentials;
    nothing for PLAINTEXT. The broker URLs keep their ``kafka://`` scheme, Faust takes the protocol from
    the credentials.
    """
    check_security(settings)
    import faust  # here, not at the top: the feed and the demo use this module without Faust

    protocol = settings.security_protocol
    if protocol == "PLAINTEXT":
        return {}
    if protocol == "SSL":
        return {"broker_credentials": faust.SSLCredentials(_ssl_context(settings))}
    credentials = faust.SASLCredentials(
        username=settings.sasl_username,
        password=settings.sasl_password,
        mechanism=settings.sasl_mechanism,
        ssl_context=_ssl_context(settings) if protocol == "SASL_SSL" else None,
    )
    return {"broker_credentials": credentials}
