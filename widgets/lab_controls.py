"""The Lab's learned-model controls: model choice, training, sampling, flow and GAN views.

Only widget construction and tooltips live here (no wiring, no math): ``LabPanel`` connects
the signals, so the controls can be laid out and tested apart from the behaviour.
"""

from __future__ import annotations

from PySide6 import QtCore, QtWidgets

from engines import lab_views as lv

H = QtCore.Qt.Orientation.Horizontal


def _slider(lo: int, hi: int, value: int, tip: str) -> QtWidgets.QSlider:
    s = QtWidgets.QSlider(H)
    s.setRange(lo, hi)
    s.setValue(value)
    s.setToolTip(tip)
    return s


def _with_label(widget: QtWidgets.QWidget, label: QtWidgets.QLabel) -> QtWidgets.QWidget:
    box = QtWidgets.QWidget()
    row = QtWidgets.QHBoxLayout(box)
    row.setContentsMargins(0, 0, 0, 0)
    row.addWidget(widget, 1)
    label.setMinimumWidth(42)
    label.setToolTip(widget.toolTip())
    row.addWidget(label)
    return box


class LearnedControls(QtWidgets.QWidget):
    """Group boxes shown per model family; ``show_family`` hides what does not apply."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        v = QtWidgets.QVBoxLayout(self)
        v.setContentsMargins(0, 0, 0, 0)

        # ------------------------------------------------------------- training
        self.train_box = QtWidgets.QGroupBox("Training")
        f = QtWidgets.QFormLayout(self.train_box)
        self.lr = QtWidgets.QDoubleSpinBox()
        self.lr.setDecimals(5)
        self.lr.setRange(1e-5, 0.05)
        self.lr.setSingleStep(1e-4)
        self.lr.setValue(2e-3)
        self.lr.setToolTip("Learning rate (Adam/AdamW); changes reach the running job at its next chunk")
        f.addRow("Learning rate", self.lr)
        self.batch = QtWidgets.QSpinBox()
        self.batch.setRange(16, 4096)
        self.batch.setSingleStep(64)
        self.batch.setValue(256)
        self.batch.setToolTip("Batch size: fresh data points per optimisation step (live)")
        f.addRow("Batch", self.batch)
        self.width = QtWidgets.QSpinBox()
        self.width.setRange(8, 512)
        self.width.setSingleStep(16)
        self.width.setValue(128)
        self.width.setToolTip("Hidden width of the network(s): architecture, so changing it "
                              "restarts training (you are asked first)")
        f.addRow("Width", self.width)
        self.depth = QtWidgets.QSpinBox()
        self.depth.setRange(1, 8)
        self.depth.setValue(3)
        self.depth.setToolTip("Hidden layers of the network(s): architecture, changing it "
                              "restarts training (you are asked first)")
        f.addRow("Depth", self.depth)
        self.conditional = QtWidgets.QCheckBox("Class-conditional (CFG)")
        self.conditional.setToolTip("Train with class labels, dropped 10% of the time, so "
                                    "classifier-free guidance can be used when sampling "
                                    "(toy data sets only; architecture: restarts training)")
        f.addRow(self.conditional)
        self.rate = QtWidgets.QLabel("–")
        self.rate.setToolTip("Training step, steps per second, learning rate and batch the job used last")
        self.rate.setWordWrap(True)
        f.addRow(self.rate)
        v.addWidget(self.train_box)

        # ------------------------------------------------------------- sampling
        self.sample_box = QtWidgets.QGroupBox("Sampling")
        f = QtWidgets.QFormLayout(self.sample_box)
        self.sampler = QtWidgets.QComboBox()
        for key, label in lv.SAMPLER_LABELS.items():
            self.sampler.addItem(label, key)
        self.sampler.setCurrentIndex(list(lv.SAMPLER_LABELS).index("ddim"))
        self.sampler.setToolTip("How the learned model is turned into samples. Rectified flow "
                                "integrates its ODE with Euler or Heun (others mean Euler)")
        f.addRow("Sampler", self.sampler)
        self.nfe = _slider(1, 1000, 50, "NFE: network evaluations per sample (Heun uses 2 per "
                           "step). Dragging re-samples in a worker; stale requests are dropped")
        self.nfe_label = QtWidgets.QLabel("50")
        f.addRow("NFE", _with_label(self.nfe, self.nfe_label))
        self.eta = _slider(0, 100, 0, "DDIM η: 0 deterministic (the PF-ODE), 1 = DDPM's noise")
        self.eta_label = QtWidgets.QLabel("0.00")
        f.addRow("DDIM η", _with_label(self.eta, self.eta_label))
        self.guidance = _slider(0, 100, 10, "Classifier-free guidance scale w (0–10): "
                                "ε_u + w (ε_c − ε_u); 1 = plain conditional, > 1 sharper and less "
                                "diverse. Needs a class-conditional model")
        self.guidance_label = QtWidgets.QLabel("1.0")
        f.addRow("Guidance", _with_label(self.guidance, self.guidance_label))
        self.exact = QtWidgets.QCheckBox("Exact model (oracle)")
        self.exact.setToolTip("Learned ↔ exact: sample with the closed-form score / velocity "
                              "of the mixture through the same sampler (mixtures only): what a "
                              "perfect network would give")
        f.addRow(self.exact)
        self.show_field = QtWidgets.QCheckBox("Learned field vs exact")
        self.show_field.setToolTip("Arrows: the learned score (diffusion) or velocity (RF) at "
                                   "time t; heat map: |learned − exact|, where the network is "
                                   "still wrong (mixtures only for the heat map)")
        f.addRow(self.show_field)
        self.field_t = _slider(2, 100, 50, "The time t at which the field is shown (diffusion: "
                               "noise at t = 1; rectified flow: noise at t = 0)")
        self.field_t_label = QtWidgets.QLabel("0.50")
        f.addRow("Field t", _with_label(self.field_t, self.field_t_label))
        self.nfe_button = QtWidgets.QPushButton("Quality vs NFE")
        self.nfe_button.setToolTip("Sliced W₂ to the target for NFE 1…200 with the chosen "
                                   "sampler (computed in a worker; the curve grows as it runs)")
        f.addRow(self.nfe_button)
        self.sample_info = QtWidgets.QLabel("")
        self.sample_info.setWordWrap(True)
        self.sample_info.setToolTip("The last sampling run: sampler, NFE and its sliced W₂")
        f.addRow(self.sample_info)
        v.addWidget(self.sample_box)

        # ------------------------------------------------------------- flows
        self.flow_box = QtWidgets.QGroupBox("Flow")
        f = QtWidgets.QFormLayout(self.flow_box)
        self.layer = _slider(0, 8, 8, "Layer k: the base Gaussian and a coordinate grid pushed "
                             "through the first k layers (k = 0: the latent; k = K: the model), "
                             "and the data pulled back to the same stage (orange)")
        self.layer_label = QtWidgets.QLabel("8/8")
        f.addRow("Layer k", _with_label(self.layer, self.layer_label))
        self.temperature = _slider(10, 200, 100, "Sampling temperature T (Glow): the base "
                                   "Gaussian's std is multiplied by T; T < 1 sharper, less diverse")
        self.temperature_label = QtWidgets.QLabel("1.00")
        f.addRow("Temperature", _with_label(self.temperature, self.temperature_label))
        self.show_grid = QtWidgets.QCheckBox("Warped grid")
        self.show_grid.setChecked(True)
        self.show_grid.setToolTip("The latent coordinate grid after the first k layers")
        self.show_latent = QtWidgets.QCheckBox("Data pulled back")
        self.show_latent.setChecked(True)
        self.show_latent.setToolTip("The data pushed back through the last K − k layers (orange)")
        f.addRow(self.show_grid)
        f.addRow(self.show_latent)
        v.addWidget(self.flow_box)

        # ------------------------------------------------------------- GANs
        self.gan_box = QtWidgets.QGroupBox("GAN")
        f = QtWidgets.QFormLayout(self.gan_box)
        self.show_push = QtWidgets.QCheckBox("Generator gradients")
        self.show_push.setChecked(True)
        self.show_push.setToolTip("Arrows on generated points: −∂loss_G/∂x, where D pushes G")
        self.show_manifold = QtWidgets.QCheckBox("Generator manifold")
        self.show_manifold.setChecked(True)
        self.show_manifold.setToolTip("A latent grid mapped through G: a warped sheet; thin "
                                      "bridges between modes and collapse are visible")
        f.addRow(self.show_push)
        f.addRow(self.show_manifold)
        self.coverage = QtWidgets.QLabel("")
        self.coverage.setWordWrap(True)
        self.coverage.setToolTip("Mixture targets: modes with ≥ a quarter of their fair share of "
                                 "high-quality samples, and the fraction of samples within 3σ of a mode")
        f.addRow(self.coverage)
        v.addWidget(self.gan_box)

        self.show_heat = QtWidgets.QCheckBox("Model heat map")
        self.show_heat.setChecked(True)
        self.show_heat.setToolTip("Flows: the model's exact log-density log p(x); GANs: the "
                                  "discriminator's P(real) or the critic's value")
        v.addWidget(self.show_heat)

    def show_family(self, fam: str) -> None:
        learned = fam != "exact"
        self.train_box.setVisible(learned)
        self.sample_box.setVisible(fam in ("diffusion", "rf"))
        self.flow_box.setVisible(fam == "flow")
        self.gan_box.setVisible(fam == "gan")
        self.show_heat.setVisible(fam in ("flow", "gan"))
        self.conditional.setVisible(fam in ("diffusion", "rf"))
