"""Kafka security settings: what librdkafka and Faust's aiokafka clients are given, and what is refused."""

from __future__ import annotations

import re
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

import faust
import pytest
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

from stream.runtime.kafka_config import (
    KafkaSecurityError,
    check_security,
    faust_broker_settings,
    librdkafka_config,
)
from stream.settings import Settings
from tests.tls import BrokerTls, make_broker_tls

ROOT = Path(__file__).resolve().parents[3]
BROKERS = "broker-a:9093,broker-b:9093"
SECURITY_VARIABLES = [
    field.alias
    for name, field in Settings.model_fields.items()
    if name.startswith(("security", "sasl", "ssl"))
]


@pytest.fixture(autouse=True)
def _no_security_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in SECURITY_VARIABLES:
        if variable is not None:
            monkeypatch.delenv(variable, raising=False)


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> BrokerTls:
    return make_broker_tls(tmp_path_factory.mktemp("tls"))


def _settings(**fields: Any) -> Settings:
    return Settings(bootstrap_servers=BROKERS, **fields)


def _aiokafka_auth(settings: Settings) -> dict[str, Any]:
    """Return the security keyword arguments Faust gives its aiokafka consumer and producer."""
    app = faust.App("kafka-config-test", broker=f"kafka://{BROKERS}", **faust_broker_settings(settings))
    return dict(credentials_to_aiokafka_auth(app.conf.broker_credentials, app.conf.ssl_context))


def _accepts_broker(context: ssl.SSLContext, tls: BrokerTls) -> bool:
    """Tell whether ``context`` completes a TLS handshake with the broker's certificate, as 127.0.0.1."""
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(tls.ca_file.with_name("broker.pem"), tls.ca_file.with_name("broker.key"))
    to_server, to_client = ssl.MemoryBIO(), ssl.MemoryBIO()
    client = context.wrap_bio(to_client, to_server, server_hostname="127.0.0.1")
    server = server_context.wrap_bio(to_server, to_client, server_side=True)
    done = {client: False, server: False}
    for _ in range(10):
        for side in (client, server):
            if not done[side]:
                try:
                    side.do_handshake()
                    done[side] = True
                except ssl.SSLWantReadError:
                    pass
                except ssl.SSLCertVerificationError:
                    return False
        if all(done.values()):
            return True
    raise AssertionError("the TLS handshake neither finished nor failed")


def test_plaintext_gives_every_client_the_brokers_and_nothing_else() -> None:
    settings = _settings()
    assert librdkafka_config(settings) == {"bootstrap.servers": BROKERS, "security.protocol": "plaintext"}
    assert faust_broker_settings(settings) == {}
    assert _aiokafka_auth(settings) == {"security_protocol": "PLAINTEXT"}


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_sasl_ssl_gives_both_libraries_the_same_user_mechanism_and_ca(mechanism: str, tls: BrokerTls) -> None:
    settings = _settings(
        security_protocol="SASL_SSL",
        sasl_mechanism=mechanism,
        sasl_username="alice",
        sasl_password="pa=ss word",
        ssl_cafile=tls.ca_file,
    )
    assert librdkafka_config(settings) == {
        "bootstrap.servers": BROKERS,
        "security.protocol": "sasl_ssl",
        "sasl.mechanism": mechanism,
        "sasl.username": "alice",
        "sasl.password": "pa=ss word",
        "ssl.ca.location": str(tls.ca_file),
    }
    auth = _aiokafka_auth(settings)
    assert {key: auth[key] for key in auth if key != "ssl_context"} == {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": mechanism,
        "sasl_plain_username": "alice",
        "sasl_plain_password": "pa=ss word",
    }
    assert _accepts_broker(auth["ssl_context"], tls)


def test_sasl_plaintext_authenticates_without_tls() -> None:
    settings = _settings(
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="bob",
        sasl_password="pw",
    )
    config = librdkafka_config(settings)
    assert config["security.protocol"] == "sasl_plaintext"
    assert (config["sasl.mechanism"], config["sasl.username"], config["sasl.password"]) == (
        "SCRAM-SHA-512",
        "bob",
        "pw",
    )
    assert "ssl.ca.location" not in config
    auth = _aiokafka_auth(settings)
    assert (auth["security_protocol"], auth["sasl_mechanism"], auth["ssl_context"]) == (
        "SASL_PLAINTEXT",
        "SCRAM-SHA-512",
        None,
    )


def test_ssl_trusts_the_ca_file_and_without_one_the_system_cas(tls: BrokerTls) -> None:
    with_ca = _settings(security_protocol="SSL", ssl_cafile=tls.ca_file)
    assert librdkafka_config(with_ca) == {
        "bootstrap.servers": BROKERS,
        "security.protocol": "ssl",
        "ssl.ca.location": str(tls.ca_file),
    }
    auth = _aiokafka_auth(with_ca)
    assert auth["security_protocol"] == "SSL"
    assert _accepts_broker(auth["ssl_context"], tls)

    system_cas = _settings(security_protocol="SSL")
    assert librdkafka_config(system_cas) == {"bootstrap.servers": BROKERS, "security.protocol": "ssl"}
    auth = _aiokafka_auth(system_cas)
    assert auth["security_protocol"] == "SSL"
    assert auth["ssl_context"].verify_mode == ssl.CERT_REQUIRED
    assert not _accepts_broker(auth["ssl_context"], tls), "a throw-away CA is not among the system's"


@pytest.mark.parametrize(
    ("fields", "variable"),
    [
        ({"security_protocol": "SASL_SSL", "sasl_password": "pw"}, "KAFKA_SASL_USERNAME"),
        ({"security_protocol": "SASL_PLAINTEXT", "sasl_username": "alice"}, "KAFKA_SASL_PASSWORD"),
        (
            {"security_protocol": "SASL_SSL", "sasl_username": "alice", "sasl_password": ""},
            "KAFKA_SASL_PASSWORD",
        ),
        ({"security_protocol": "PLAINTEXT", "sasl_username": "alice"}, "KAFKA_SASL_USERNAME"),
        ({"security_protocol": "SSL", "sasl_password": "pw"}, "KAFKA_SASL_PASSWORD"),
        ({"security_protocol": "SSL", "ssl_cafile": Path("/nonexistent/ca.pem")}, "KAFKA_SSL_CAFILE"),
    ],
)
def test_incomplete_or_contradicting_settings_are_refused_naming_the_variable(
    fields: dict[str, Any], variable: str
) -> None:
    settings = _settings(**fields)
    for build in (check_security, librdkafka_config, faust_broker_settings):
        with pytest.raises(KafkaSecurityError, match=variable):
            build(settings)


def test_a_ca_file_is_refused_when_tls_is_off_or_it_holds_no_certificate(tls: BrokerTls) -> None:
    unused = _settings(
        security_protocol="SASL_PLAINTEXT", sasl_username="a", sasl_password="b", ssl_cafile=tls.ca_file
    )
    with pytest.raises(
        KafkaSecurityError, match="KAFKA_SSL_CAFILE is set but KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT"
    ):
        librdkafka_config(unused)
    not_pem = tls.ca_file.with_name("broker.ext")
    with pytest.raises(KafkaSecurityError, match=re.escape(f"KAFKA_SSL_CAFILE={not_pem}")):
        faust_broker_settings(_settings(security_protocol="SSL", ssl_cafile=not_pem))
    assert issubclass(KafkaSecurityError, ValueError)


def test_the_cli_stops_on_bad_security_settings_naming_the_variable() -> None:
    # No broker is needed: the settings are checked before anything connects.
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(ROOT),
        "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",
        "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "KAFKA_SASL_PASSWORD": "pw",
    }
    for command in ("worker", "feed"):
        result = subprocess.run(
            [sys.executable, "-m", "stream", command],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
            cwd=ROOT,
            check=False,
        )
        assert result.returncode != 0
        assert result.stderr.strip() == "stream: KAFKA_SECURITY_PROTOCOL=SASL_SSL needs KAFKA_SASL_USERNAME"
