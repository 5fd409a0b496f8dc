"""Kirei for Krita: a docker and a Tools > Scripts action that remove a stamped watermark and
upscale the selected paint layer into a new layer, through Kirei's engine worker."""
try:
    from krita import DockWidgetFactory, DockWidgetFactoryBase, Krita
except ImportError:  # imported outside Krita (tests with stubs, tools): register nothing
    Krita = None

if Krita is not None and Krita.instance() is not None:
    from .controller import Controller
    from .docker import DOCKER_ID, KireiDocker
    from .extension import KireiExtension

    _app = Krita.instance()
    KireiDocker.controller = KireiExtension.controller = Controller()
    _app.addExtension(KireiExtension(_app))
    _app.addDockWidgetFactory(DockWidgetFactory(DOCKER_ID, DockWidgetFactoryBase.DockPosition.DockRight, KireiDocker))
