"""The Diffusion Edit docker: prompt, method, strength (+ source prompt, steps, seed, model path, LoRA file
and strength under "More"; a ControlNet file, its control map and scale under "ControlNet"), Edit / Cancel, a
progress bar. Errors appear in a QMessageBox."""
from krita import DockWidget, Krita
from PyQt5.QtWidgets import (QComboBox, QDoubleSpinBox, QFormLayout, QGroupBox, QHBoxLayout, QLineEdit,
                             QMessageBox, QProgressBar, QPushButton, QSpinBox, QVBoxLayout, QWidget)

from .editing import CONTROLS, METHODS, EditController, EditSettings

DOCKER_ID = "diffedit_docker"


class DiffEditDocker(DockWidget):
    def __init__(self):
        super().__init__()
        self.setWindowTitle("Diffusion Edit")
        root = QWidget(self)
        lay = QVBoxLayout(root)
        form = QFormLayout()
        self.prompt = QLineEdit()
        self.prompt.setPlaceholderText("e.g. a blue circle — or, for instruct: make the circle blue")
        self.prompt.returnPressed.connect(self.edit)
        form.addRow("Prompt", self.prompt)
        self.method = QComboBox()
        self.method.addItems(METHODS)
        self.method.setToolTip("auto: instruct for an instruct model, inpaint for an inpainting model (repaints the selection), p2p with a source prompt, else sdedit")
        form.addRow("Method", self.method)
        self.strength = QDoubleSpinBox()
        self.strength.setRange(0.0, 1.0)
        self.strength.setSingleStep(0.05)
        self.strength.setSpecialValueText("default")
        self.strength.setToolTip("SDEdit noise level; 0 = the method's default")
        form.addRow("Strength", self.strength)
        lay.addLayout(form)

        more = QGroupBox("More")
        more.setCheckable(True)
        more.setChecked(False)
        mform = QFormLayout(more)
        self.source = QLineEdit()
        self.source.setPlaceholderText("what the layer shows now (ddim, p2p)")
        mform.addRow("Source prompt", self.source)
        self.guidance = QDoubleSpinBox()
        self.guidance.setRange(0.0, 100.0)
        self.guidance.setSpecialValueText("default")
        mform.addRow("Guidance", self.guidance)
        self.steps = QSpinBox()
        self.steps.setRange(0, 1000)
        self.steps.setSpecialValueText("default")
        mform.addRow("Steps", self.steps)
        self.seed = QSpinBox()
        self.seed.setRange(0, 2**31 - 1)
        mform.addRow("Seed", self.seed)
        self.model = QLineEdit()
        self.model.setPlaceholderText("empty = the embedded default model")
        mform.addRow("Model", self.model)
        self.lora = QLineEdit()
        self.lora.setPlaceholderText("LoRA .safetensors (diffusers/PEFT or kohya); empty = none")
        mform.addRow("LoRA", self.lora)
        self.lora_scale = QDoubleSpinBox()
        self.lora_scale.setRange(-10.0, 10.0)
        self.lora_scale.setSingleStep(0.05)
        self.lora_scale.setValue(1.0)
        self.lora_scale.setToolTip("The LoRA's strength: 1 = as trained, 0 = no effect")
        mform.addRow("LoRA strength", self.lora_scale)
        lay.addWidget(more)

        cn = QGroupBox("ControlNet")
        cn.setCheckable(True)
        cn.setChecked(False)
        cform = QFormLayout(cn)
        self.controlnet = QLineEdit()
        self.controlnet.setPlaceholderText("empty = none; a ControlNetModel folder or control_*.safetensors")
        self.controlnet.setToolTip("A ControlNet made for the model keeps the layer's structure")
        cform.addRow("ControlNet", self.controlnet)
        self.control = QComboBox()
        self.control.addItems(CONTROLS)
        self.control.setToolTip("The control map made from the layer: canny (edges), tile (the layer itself), "
                                "inpaint (the selection masked)")
        cform.addRow("Control", self.control)
        self.control_scale = QDoubleSpinBox()
        self.control_scale.setRange(0.0, 10.0)
        self.control_scale.setSingleStep(0.05)
        self.control_scale.setValue(1.0)
        self.control_scale.setToolTip("ControlNet conditioning scale: 1 = as trained, 0 = off")
        cform.addRow("Control scale", self.control_scale)
        lay.addWidget(cn)

        buttons = QHBoxLayout()
        self.edit_button = QPushButton("Edit")
        self.edit_button.clicked.connect(self.edit)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        buttons.addWidget(self.edit_button)
        buttons.addWidget(self.cancel_button)
        lay.addLayout(buttons)
        self.bar = QProgressBar()
        self.bar.setRange(0, 1)
        self.bar.setValue(0)
        lay.addWidget(self.bar)
        lay.addStretch(1)
        self.setWidget(root)

        self.controller = EditController(self)
        self.controller.progress.connect(self._progress)
        self.controller.finished.connect(self._finished)
        self.controller.failed.connect(self._failed)
        self.cancel_button.clicked.connect(self.controller.cancel)

    def canvasChanged(self, canvas):  # required by DockWidget
        pass

    def settings(self):
        return EditSettings(prompt=self.prompt.text(), method=self.method.currentText(),
                            strength=self.strength.value(), source_prompt=self.source.text(),
                            guidance=self.guidance.value(), steps=self.steps.value(), seed=self.seed.value(),
                            model_path=self.model.text().strip(), lora_path=self.lora.text().strip(),
                            lora_scale=self.lora_scale.value(), controlnet_path=self.controlnet.text().strip(),
                            control=self.control.currentText(), control_scale=self.control_scale.value())

    def edit(self):
        """The docker's edit action: the active document's active layer, within the selection."""
        doc = Krita.instance().activeDocument()
        node = doc.activeNode() if doc is not None else None
        if self.controller.start(doc, node, self.settings()):
            self._running(True)

    def _running(self, on):
        self.edit_button.setEnabled(not on)
        self.cancel_button.setEnabled(on)
        self.bar.setRange(0, 0 if on else 1)  # busy until the first step is reported
        if not on:
            self.bar.setValue(0)

    def _progress(self, step, steps):
        self.bar.setRange(0, max(1, steps))
        self.bar.setValue(step)

    def _finished(self, node):
        self._running(False)
        doc = Krita.instance().activeDocument()
        if doc is not None:
            try:
                doc.setActiveNode(node)
            except Exception:
                pass

    def _failed(self, message):
        self._running(False)
        if message.endswith("was cancelled."):
            return
        QMessageBox.warning(self, "Diffusion Edit", message)
