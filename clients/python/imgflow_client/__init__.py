"""imgflow's Python client: `Client(api_url, token).upload("photo.jpg")` uploads and waits for the job."""

from imgflow_client.client import Client, declared_type
from imgflow_client.errors import ApiError, ImgflowError, UploadRefusedError
from imgflow_client.views import Edit, EditAccepted, Error, JobList, JobView, UploadCreated, UploadForm, Variant

__all__ = [
    "ApiError",
    "Client",
    "Edit",
    "EditAccepted",
    "Error",
    "ImgflowError",
    "JobList",
    "JobView",
    "UploadCreated",
    "UploadForm",
    "UploadRefusedError",
    "Variant",
    "declared_type",
]
