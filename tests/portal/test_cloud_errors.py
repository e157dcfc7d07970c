from keystoneauth1 import exceptions as ksa_exc
from openstack import exceptions as sdk_exc

from portal.cloud import errors


def test_no_valid_host_becomes_a_capacity_message():
    exc = sdk_exc.SDKException("No valid host was found. There are not enough hosts available.")
    translated = errors.translate(exc)
    assert isinstance(translated, errors.NoValidHost)
    assert "No host has capacity for this flavor" in str(translated)


def test_quota_conflict_becomes_quota_exceeded_with_the_cloud_detail():
    exc = sdk_exc.ConflictException(message="Quota exceeded for cores: Requested 8, but already used 148 of 150 cores")
    translated = errors.translate(exc)
    assert isinstance(translated, errors.QuotaExceeded)
    assert "quota" in str(translated).lower() and "150 cores" in str(translated)


def test_unreachable_cloud_becomes_cloud_unavailable():
    translated = errors.translate(ksa_exc.ConnectFailure("refused"))
    assert isinstance(translated, errors.CloudUnavailable)
    assert "not answering" in str(translated)


def test_missing_resource_becomes_not_found():
    assert isinstance(errors.translate(sdk_exc.NotFoundException("gone")), errors.NotFound)
