from django.http import HttpResponse, JsonResponse


def usage_page(request):
    return HttpResponse("placeholder")


def usage_json(request):
    return JsonResponse({})
