"""REDIS_URL as plain Redis or a Sentinel list: parsed once, masked in messages."""

import pytest
from pydantic import ValidationError

from config.settings import Settings, masked_url
from workers.redis_connection import parse_sentinel_url

pytestmark = pytest.mark.unit

SENTINELS = "sentinel://:pw@10.0.0.11:26379/2;sentinel://10.0.0.12:26380/2;sentinel://10.0.0.13/2"


def test_a_sentinel_list_gives_every_sentinel_the_database_and_the_master_password():
    parsed = parse_sentinel_url(SENTINELS)
    assert parsed.hosts == [("10.0.0.11", 26379), ("10.0.0.12", 26380), ("10.0.0.13", 26379)]
    assert parsed.db == 2 and parsed.password == "pw"


def test_passwords_are_masked_in_each_part_of_a_url_list():
    assert masked_url(SENTINELS).startswith("sentinel://:***@10.0.0.11:26379/2;sentinel://10.0.0.12:26380/2")
    assert masked_url("postgresql://app:s3cret@db:5432/litink") == "postgresql://app:***@db:5432/litink"
    assert masked_url("redis://localhost:6379/0") == "redis://localhost:6379/0"


def test_a_sentinel_url_without_the_master_name_is_refused_and_an_empty_url_is_unset():
    with pytest.raises(ValidationError, match="REDIS_SENTINEL_MASTER"):
        Settings(redis_url=SENTINELS, _env_file=None)
    settings = Settings(redis_url=SENTINELS, redis_sentinel_master="litink", database_url="", _env_file=None)
    assert settings.uses_sentinel and settings.database_url is None


def test_only_postgres_and_redis_urls_are_accepted():
    with pytest.raises(ValidationError, match="postgresql://"):
        Settings(database_url="mysql://root@localhost/litink", _env_file=None)
    with pytest.raises(ValidationError, match="redis://"):
        Settings(redis_url="amqp://guest@localhost//", _env_file=None)
