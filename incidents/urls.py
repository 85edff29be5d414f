from django.urls import path  # noqa: F401 - the dashboard's routes are added here

app_name = "incidents"

urlpatterns: list = []
