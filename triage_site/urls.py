from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from incidents.api.scrape import metrics_view
from incidents.views import healthz

urlpatterns = [
    path("admin/", admin.site.urls),
    # Sign-in and sign-out only: no self-service password reset (there is no mail to send it
    # with, and it would be a page open to anyone); administrators set passwords in the admin.
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("healthz", healthz, name="healthz"),
    path("api/", include("incidents.api.urls")),
    path("metrics", metrics_view, name="metrics"),
    path("", include("incidents.urls")),
]
