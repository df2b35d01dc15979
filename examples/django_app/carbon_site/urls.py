from django.urls import path

from carbon_site import views

urlpatterns = [
    path("work/", views.work),
    path("health/", views.health),
]
