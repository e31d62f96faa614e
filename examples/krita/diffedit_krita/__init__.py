"""Diffusion Edit for Krita: a docker (Settings > Dockers > Diffusion Edit) with prompt, method and
strength that edits the active layer within the selection into a new paint layer, calling libdiffedit
through the ctypes binding python/diffedit.py. The editing code is in editing.py (usable without the
docker: EditController.run_blocking), the docker in docker.py."""
try:
    from krita import DockWidgetFactory, DockWidgetFactoryBase, Krita
except ImportError:  # imported outside Krita (e.g. by tests of editing.py)
    Krita = None

if Krita is not None and Krita.instance() is not None:
    try:
        from .docker import DiffEditDocker, DOCKER_ID

        Krita.instance().addDockWidgetFactory(
            DockWidgetFactory(DOCKER_ID, DockWidgetFactoryBase.DockRight, DiffEditDocker))
    except Exception as e:  # never break Krita's start-up
        import sys
        print(f"diffedit_krita: could not register the docker: {e}", file=sys.stderr)
