"""The web app (``instaseg web``, Gradio) and Label Studio pre-annotations.

:mod:`~instaseg_ros.web.inference` and :mod:`~instaseg_ros.web.labelstudio` need no Gradio;
:mod:`~instaseg_ros.web.app` imports Gradio when the page is built.
"""
