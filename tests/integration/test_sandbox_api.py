"""The sandbox's wire format over real loopback HTTP: envelopes, status codes, detail strings."""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx
import pytest

from perianctl.perian import models as m
from perianctl.perian import pricing
from tests.plugins.sandbox import SandboxHandle, http_client

pytestmark = pytest.mark.timeout(60)

ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
ENVELOPE_KEYS = {"status", "message", "detail", "status_code"}


def _error(response: httpx.Response, status: int, detail: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body == {
        "status": "Error",
        "message": m.MESSAGE_CLIENT_ERROR if status < 500 else m.MESSAGE_SERVER_ERROR,
        "detail": detail,
        "status_code": status,
    }


def _create(client: httpx.Client, body: dict[str, Any]) -> httpx.Response:
    return client.post("/job", json=body)


# --------------------------------------------------------------------------- auth


def test_auth_errors(shared_sandbox: SandboxHandle) -> None:
    url = shared_sandbox.url
    with http_client() as client:
        _auth_errors(client, shared_sandbox, url)


def _auth_errors(httpx: httpx.Client, shared_sandbox: SandboxHandle, url: str) -> None:
    _error(httpx.get(f"{url}/job"), 400, "Missing required header: X-PERIAN-AUTH-ORG")
    _error(
        httpx.get(f"{url}/job", headers={"X-PERIAN-AUTH-ORG": shared_sandbox.org}),
        400,
        "Missing required header: Authorization",
    )
    _error(
        httpx.get(f"{url}/job", headers={"X-PERIAN-AUTH-ORG": "nope", "Authorization": "Bearer x"}),
        401,
        m.DETAIL_ORG_NOT_FOUND,
    )
    _error(
        httpx.get(f"{url}/job", headers={"X-PERIAN-AUTH-ORG": shared_sandbox.org, "Authorization": "Bearer x"}),
        401,
        m.DETAIL_INVALID_TOKEN,
    )
    # The token without "Bearer " (virtual-kubelet sends it verbatim) is accepted too.
    ok = httpx.get(
        f"{url}/job", headers={"X-PERIAN-AUTH-ORG": shared_sandbox.org, "Authorization": shared_sandbox.token}
    )
    assert ok.status_code == 200
    # Auth is checked before validation: an unauthenticated malformed request learns nothing else.
    _error(httpx.get(f"{url}/job/not-a-uuid"), 400, "Missing required header: X-PERIAN-AUTH-ORG")


def test_admin_routes_need_no_auth(shared_sandbox: SandboxHandle) -> None:
    with http_client(shared_sandbox.url) as client:
        health = client.get("/healthz").json()
        assert "token" not in client.get("/healthz").text
    assert health["status"] == "ok" and health["runtime"] == "simulate"
    stats = shared_sandbox.stats()
    assert {"jobs", "create_calls", "jobs_created", "faults", "requests"} <= set(stats)
    assert set(stats["jobs"]["by_status"]) >= {"Queued", "Running", "Done", "Timeout", "Undefined"}


# --------------------------------------------------------------------------- jobs


def test_create_get_list_cancel_shapes(sandbox: SandboxHandle) -> None:
    with sandbox.http() as client:
        created = _create(
            client,
            {
                "requirements": {"cpu": {"cores": 2, "all": False}, "ram": {"size": 8}},
                "docker_run_parameters": {
                    "image_name": "ubuntu",
                    "image_tag": "22.04",
                    "command": "echo hi",
                    "env_variables": {"PERIANCTL_IDEMPOTENCY_KEY": "k-1", "N": 3},
                    "secrets": {"AWS_SECRET_ACCESS_KEY": "s3cr3t-value"},
                },
                "docker_registry_credentials": {"url": "https://ghcr.io", "username": "me", "password": "pw-123456"},
            },
        )
        assert created.status_code == 200
        body = created.json()
        assert body["message"] == m.MESSAGE_JOB_CREATED and body["status"] == "Success"
        assert body["detail"] == "" and body["status_code"] == 200
        job_id = body["id"]
        assert str(uuid.UUID(job_id)) == job_id

        got = client.get(f"/job/{job_id}")
        assert got.status_code == 200
        page = got.json()
        assert page["no"] == 1 and len(page["jobs"]) == 1 and set(page) >= ENVELOPE_KEYS | {"pagination"}
        job = page["jobs"][0]
        assert job["id"] == job_id
        assert job["status"] in {"Queued", "Initializing", "Running", "Done"}
        assert ISO_Z.match(job["created_at"]) and ISO_Z.match(job["updated_at"])
        params = job["docker_metadata"]["docker_run_parameters"]
        assert params["env_variables"] == {"PERIANCTL_IDEMPOTENCY_KEY": "k-1", "N": 3}
        assert params["secrets"] is None and params["container_files"] is None
        registry = job["docker_metadata"]["docker_registry_credentials"]
        assert registry == {"url": "https://ghcr.io", "username": "me", "password": None}
        assert "s3cr3t-value" not in got.text and "pw-123456" not in got.text
        assert job["requirement_metadata"]["requirements"]["ram"] == {"size": "8"}
        assert job["requirement_metadata"]["os_storage_config"] == {"size": 250}
        runtime = job["runtime_metadata"]
        assert runtime["auto_failover_instance_type"] is True and runtime["timeout_seconds"] is None
        itype = client.get(f"/instance-type/{runtime['instance_type_id']}").json()["instance_types"][0]
        assert itype["cpu"]["cores"] >= 2 and float(itype["ram"]["size"]) >= 8
        assert job["price"] == itype["price"] and isinstance(job["price"]["unit_price"], str)

        done = sandbox.wait_for_status(job_id)
        assert done["status"] == "Done"
        assert ISO_Z.match(done["started_at"]) and ISO_Z.match(done["done_at"])
        assert done["started_at"] <= done["done_at"] and done["errors"] is None
        assert "done" in done["logs"]

        _error(client.patch(f"/job/{job_id}/cancel"), 400, m.DETAIL_JOB_ALREADY_DONE)


def test_not_found_and_malformed_ids(shared_sandbox: SandboxHandle) -> None:
    missing = str(uuid.uuid4())
    with shared_sandbox.http() as client:
        _error(client.get(f"/job/{missing}"), 400, m.DETAIL_NO_JOB_FOUND)
        _error(client.patch(f"/job/{missing}/cancel"), 400, m.DETAIL_NO_JOB_FOUND)
        for response in (client.get("/job/not-a-uuid"), client.patch("/job/not-a-uuid/cancel")):
            assert response.status_code == 422
            detail = response.json()["detail"]
            assert detail[0]["type"] == "uuid_parsing" and detail[0]["loc"] == ["path", "job_id"]
        bad_limit = client.get("/job", params={"limit": "many"})
        assert bad_limit.status_code == 422 and bad_limit.json()["detail"][0]["loc"] == ["query", "limit"]
        bad_json = client.post("/job", content=b"{not json", headers={"content-type": "application/json"})
        assert bad_json.status_code == 422 and bad_json.json()["detail"][0]["type"] == "json_invalid"
        bad_itype = _create(client, {"instance_type_id": "not-a-uuid"})
        assert bad_itype.status_code == 422
        unknown_route = client.get("/nope")
        assert unknown_route.status_code == 404 and unknown_route.json() == {"detail": "Not Found"}


def test_create_errors(shared_sandbox: SandboxHandle) -> None:
    with shared_sandbox.http() as client:
        _error(
            _create(client, {"docker_run_parameters": {"image_name": "x"}}), 400, m.DETAIL_INCORRECT_CREATE_PARAMETER
        )
        _error(
            _create(client, {"instance_type_id": None, "requirements": None}), 400, m.DETAIL_INCORRECT_CREATE_PARAMETER
        )
        _error(_create(client, {"instance_type_id": str(uuid.uuid4())}), 400, m.DETAIL_INSTANCE_TYPE_NOT_FOUND)
        _error(
            _create(client, {"requirements": {"cpu": {"cores": 100000}}}),
            400,
            "No instance type found matching the requirements",
        )
        _error(
            _create(client, {"requirements": {"accelerator": {"name": "Z9000"}}}),
            400,
            "Unknown accelerator name 'Z9000'",
        )


def test_requests_are_lenient(sandbox: SandboxHandle) -> None:
    cheapest_gpu = None
    with sandbox.http() as client:
        search = client.post(
            "/instance-type",
            params={"limit": 1},
            json={"instance_type_query": {"accelerator": {"name": "A100", "no": 1}}},
        )
        cheapest_gpu = search.json()["instance_types"][0]["id"]
        bodies = [
            # dagster-style explicit nulls, unknown keys, number sizes, float counts
            {
                "requirements": {
                    "region": {"location": None},
                    "accelerator": {"name": None, "no": None},
                    "ram": {"size": 8.0},
                    "cpu": {"cores": 2.0},
                    "future_key": {"x": 1},
                },
                "docker_run_parameters": {"image_name": "ubuntu"},
                "docker_registry_credentials": None,
                "something_new": True,
            },
            # flytekit 0.5.3 body
            {
                "auto_failover_instance_type": True,
                "os_storage_config": {"size": 100},
                "requirements": {
                    "all": False,
                    "region": {"location": "DE"},
                    "cpu": {"all": False, "cores": 2},
                    "accelerator": {"no": 1, "name": "A100"},
                    "ram": {"all": False, "size": "8"},
                    "provider": {"name_short": "taiga"},
                },
                "docker_run_parameters": {
                    "image_name": "ghcr.io/acme/flyte",
                    "image_tag": "abc",
                    "command": "pyflyte-execute --inputs s3://b/in.pb",
                    "env_variables": {"FOO": "bar"},
                    "secrets": {"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b"},
                },
                "docker_registry_credentials": None,
            },
            # perian-cli quirk: mangled requirements next to a resolved instance type id
            {
                "instance_type_id": cheapest_gpu,
                "timeout_seconds": 5400,
                "requirements": {
                    "ram": {"size": "anyof_schema_1_validator=None actual_instance='16'"},
                    "operator": "NOT_AN_OPERATOR",
                    "options": {"order": "WHATEVER", "limit": "x"},
                },
                "docker_run_parameters": {"image_name": "ubuntu", "image_tag": "22.04", "command": "echo hi"},
            },
        ]
        ids = []
        for body in bodies:
            response = _create(client, body)
            assert response.status_code == 200, response.text
            ids.append(response.json()["id"])
        flyte_job = client.get(f"/job/{ids[1]}").json()["jobs"][0]
        assert flyte_job["requirement_metadata"]["os_storage_config"] == {"size": 100}
        echoed = flyte_job["requirement_metadata"]["requirements"]
        assert echoed["accelerator"] == {"no": 1, "name": "A100"} and echoed["ram"] == {"all": False, "size": "8"}
        itype = client.get(f"/instance-type/{flyte_job['runtime_metadata']['instance_type_id']}").json()
        chosen = itype["instance_types"][0]
        assert chosen["provider"]["name_short"] == "taiga" and chosen["region"]["location"] == "DE"
        assert chosen["accelerator"]["accelerator_types"][0]["name"].startswith("NVIDIA_A100")
        quirk = client.get(f"/job/{ids[2]}").json()["jobs"][0]
        assert quirk["runtime_metadata"] == {
            "instance_type_id": cheapest_gpu,
            "auto_failover_instance_type": True,
            "timeout_seconds": 5400,
        }
        assert "operator" not in quirk["requirement_metadata"]["requirements"]
        assert quirk["requirement_metadata"]["requirements"]["options"] == {}
        null_job = client.get(f"/job/{ids[0]}").json()["jobs"][0]
        assert null_job["requirement_metadata"]["requirements"] == {
            "ram": {"size": "8"},
            "cpu": {"cores": 2},
            "region": {},
            "accelerator": {},
        }


def test_list_is_newest_first_with_pagination(sandbox: SandboxHandle) -> None:
    ids = [sandbox.create_job(f"echo {i}") for i in range(7)]
    with sandbox.http() as client:
        default = client.get("/job").json()
        assert default["limit"] == 25 and default["no"] == 7
        assert [j["id"] for j in default["jobs"]] == ids[::-1]
        assert default["pagination"] == {
            "total_items": 7,
            "items_per_page": 25,
            "current_page": 1,
            "total_pages": 1,
            "next_page": None,
            "previous_page": None,
        }
        pages = [client.get("/job", params={"limit": 3, "page": p}).json() for p in (1, 2, 3, 4)]
        assert [len(p["jobs"]) for p in pages] == [3, 3, 1, 0]
        assert [j["id"] for p in pages for j in p["jobs"]] == ids[::-1]
        assert [(p["pagination"]["previous_page"], p["pagination"]["next_page"]) for p in pages[:3]] == [
            (None, 2),
            (1, 3),
            (2, None),
        ]
        assert pages[0]["pagination"]["total_pages"] == 3 and pages[1]["pagination"]["current_page"] == 2
        assert pages[0]["limit"] == 3 and pages[0]["no"] == 3


def test_jobs_are_scoped_to_the_organization(sandbox: SandboxHandle) -> None:
    job_id = sandbox.create_job()
    # the sandbox has one organization; another org is refused before any lookup
    with http_client(sandbox.url) as client:
        response = client.get(
            f"/job/{job_id}", headers={"X-PERIAN-AUTH-ORG": "other", "Authorization": f"Bearer {sandbox.token}"}
        )
    _error(response, 401, m.DETAIL_ORG_NOT_FOUND)


# --------------------------------------------------------------------------- catalogue


def test_instance_type_search_is_cheapest_first(shared_sandbox: SandboxHandle) -> None:
    with shared_sandbox.http() as client:
        everything = client.post("/instance-type", params={"limit": 100}, json={"instance_type_query": {}}).json()
        rates = [
            pricing.rate(t["price"]["unit_price"], t["price"]["granularity"], t["price"]["currency"])
            for t in everything["instance_types"]
        ]
        prices = [r.per_hour for r in rates if r is not None]  # unit prices differ by granularity: compare per hour
        assert prices == sorted(prices) and len(prices) == len(rates) >= 12
        assert everything["pagination"]["total_items"] == len(prices)

        a100 = client.post("/instance-type", json={"instance_type_query": {"accelerator": {"name": "A100"}}}).json()
        names = [t["accelerator"]["accelerator_types"][0]["name"] for t in a100["instance_types"]]
        assert set(names) == {"NVIDIA_A100_40", "NVIDIA_A100_80"}
        h100 = client.post(
            "/instance-type", json={"instance_type_query": {"accelerator": {"name": "H100", "no": 2}}}
        ).json()["instance_types"]
        assert [t["accelerator"]["no"] for t in h100] == [2]
        exact = client.post(
            "/instance-type", json={"instance_type_query": {"cpu": {"cores": 8, "operator": "EQUALS"}}}
        ).json()["instance_types"]
        assert exact and all(t["cpu"]["cores"] == 8 for t in exact)
        de = client.post(
            "/instance-type", json={"instance_type_query": {"region": {"location": "de", "status": "ACTIVE"}}}
        ).json()["instance_types"]
        assert de and all(t["region"]["location"] == "DE" for t in de)

        first = client.post(
            "/instance-type",
            params={"limit": 1},
            json={"instance_type_query": {"cpu": {"cores": 4}, "ram": {"size": "16"}}},
        ).json()
        assert first["no"] == 1 and first["limit"] == 1 and first["pagination"]["next_page"] == 2
        one = first["instance_types"][0]
        assert one["cpu"]["cores"] >= 4 and float(one["ram"]["size"]) >= 16
        by_id = client.get(f"/instance-type/{one['id']}").json()
        assert by_id["instance_types"] == [one]

        _error(client.get(f"/instance-type/{uuid.uuid4()}"), 400, m.DETAIL_NO_INSTANCE_TYPE_FOUND)
        _error(
            client.post("/instance-type", json={}), 400, "Please either provide a specific instance_type ID or a query"
        )
        none = client.post("/instance-type", json={"instance_type_query": {"cpu": {"cores": 99999}}}).json()
        assert none["status_code"] == 200 and none["instance_types"] == []


def test_accelerator_types(shared_sandbox: SandboxHandle) -> None:
    with shared_sandbox.http() as client:
        everything = client.get("/accelerator-type").json()
        names = {a["name"] for a in everything["accelerator_types"]}
        assert {"NVIDIA_A100_80", "NVIDIA_H100_80", "NVIDIA_L4_24", "NVIDIA_T4_16"} <= names
        assert everything["no"] == len(names)
        found = client.post(
            "/accelerator-type", json={"accelerator_type_query": {"name": "a100", "memory": {"size": 80}}}
        ).json()
        assert [a["name"] for a in found["accelerator_types"]] == ["NVIDIA_A100_80"]
        one = found["accelerator_types"][0]
        assert one["memory"] == {"size": "80", "unit": "Gb"} and one["display_name"]
        assert client.get(f"/accelerator-type/{one['id']}").json()["accelerator_types"] == [one]
        _error(
            client.post("/accelerator-type", json={"accelerator_type_query": {"name": "Z9000"}}),
            400,
            m.DETAIL_NO_ACCELERATOR_TYPE_FOUND,
        )
        _error(client.get(f"/accelerator-type/{uuid.uuid4()}"), 400, m.DETAIL_NO_ACCELERATOR_TYPE_FOUND)


def test_organization_route_for_perian_cli_login(shared_sandbox: SandboxHandle) -> None:
    with shared_sandbox.http() as client:
        body = client.get("/organization").json()
    assert body["status_code"] == 200
    assert body["organization"] == {"name": shared_sandbox.org, "access_token": shared_sandbox.token}
