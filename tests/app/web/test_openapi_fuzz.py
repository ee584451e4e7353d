"""schemathesis generates requests from the server's own OpenAPI schema and sends them to a
real server on loopback: none may get a 5xx, and every answer must match the schema."""

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import negative_data_rejection, positive_data_acceptance

pytestmark = pytest.mark.fuzz


API_KEY = "fuzz-key"


@pytest.fixture(scope="module")
def api_schema(module_server_launcher, module_model_store):
    """With the API key on, so that schemathesis can check the documented security too."""
    base = module_server_launcher(
        LEUKOLENS_MODEL_STORE=str(module_model_store), LEUKOLENS_API_KEY=API_KEY
    )
    return schemathesis.openapi.from_url(f"{base}/openapi.json")


def test_every_documented_operation_survives_generated_requests(api_schema):
    operations = [result.ok() for result in api_schema.get_all_operations()]
    labels = {operation.label for operation in operations}
    assert {"POST /api/v1/predict", "POST /api/v1/predict/batch", "GET /api/v1/models"} <= labels
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
        def call(case):
            response = case.call(headers={"X-API-Key": API_KEY}, timeout=30)
            assert response.status_code < 500, (
                f"{case.method} {case.formatted_path}: {response.text}"
            )
            # Schema-valid binary is rarely a valid image, so "positive data acceptance" does
            # not apply; "negative data rejection" likewise fights a multipart file field.
            case.validate_response(
                response, excluded_checks=[positive_data_acceptance, negative_data_rejection]
            )

        call()
