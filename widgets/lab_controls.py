"""The Lab's learned-model controls: model choice, training, sampling, flow and GAN views.

Only widget construction and tooltips live here (no wiring, no math): ``LabPanel`` connects
the signals, so the controls can be laid out and tested apart from the behaviour.
"""

from __future__ import annotations

from PySide6 import QtCore, QtWidgets

from engines import lab_views as lv
from engines import toy_data

H = QtCore.Qt.Orientation.Horizontal
T_STEPS = 1000  # resolution of the Lab's t slider


def _slider(lo: int, hi: int, value: int, tip: str) -> QtWidgets.QSlider:
    s = QtWidgets.QSlider(H)
    s.setRange(lo, hi)
    s.setValue(value)
    s.setToolTip(tip)
    return s


def _lr_spin(tip: str) -> QtWidgets.QDoubleSpinBox:
    spin = QtWidgets.QDoubleSpinBox()
    spin.setDecimals(5)
    spin.setRange(1e-5, 0.05)
    spin.setSingleStep(1e-4)
    spin.setValue(1e-3)
    spin.setToolTip(tip)
    return spin


def _combo(items: dict[str, str], tip: str) -> QtWidgets.QComboBox:
    """A combo of ``label -> key`` items (``currentData()`` is the key)."""
    box = QtWidgets.QComboBox()
    for label, key in items.items():
        box.addItem(label, key)
    box.setToolTip(tip)
    return box


def restrict_samplers(combo: QtWidgets.QComboBox, fam: str, fallback: str) -> None:
    """Rectified flow has only ODE solvers: grey out the diffusion samplers in ``combo`` and,
    if one of them is chosen, switch to ``fallback`` (silently: the caller re-samples)."""
    items = combo.model()
    for i, key in enumerate(lv.SAMPLER_LABELS):
        item = items.item(i)  # type: ignore[attr-defined]
        if item is not None:
            item.setEnabled(fam != "rf" or key in lv.RF_SAMPLERS)
    if fam == "rf" and combo.currentData() not in lv.RF_SAMPLERS:
        was = combo.blockSignals(True)
        combo.setCurrentIndex(list(lv.SAMPLER_LABELS).index(fallback))
        combo.blockSignals(was)


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
        self.prediction = _combo(
            {"ε (noise)": "eps", "x₀ (clean data)": "x0", "v (velocity)": "v"},
            "What the diffusion network predicts from x_t: the added noise ε (DDPM), the clean "
            "x₀, or v = √ᾱ ε − √(1−ᾱ) x₀ (Salimans & Ho). Same optimum, different weighting "
            "of the noise levels; sampling converts it to ε. Restarts training (asked first)")
        f.addRow("Predicts", self.prediction)
        self.lr_g = _lr_spin("Generator learning rate (Adam; RMSprop for clipped WGAN); live")
        f.addRow("lr G", self.lr_g)
        self.lr_d = _lr_spin("Discriminator / critic learning rate; live. TTUR: a faster D than G "
                             "often stabilises training")
        f.addRow("lr D", self.lr_d)
        self.n_critic = QtWidgets.QSpinBox()
        self.n_critic.setRange(1, 20)
        self.n_critic.setValue(1)
        self.n_critic.setToolTip("Discriminator (critic) steps per generator step; WGANs want ~5 "
                                 "so the critic is near its optimum when G moves (live)")
        f.addRow("Critic steps", self.n_critic)
        self.latent = QtWidgets.QSpinBox()
        self.latent.setRange(1, 16)
        self.latent.setValue(2)
        self.latent.setToolTip("Size of the generator's latent z ~ N(0, I). 1: G can only draw a "
                               "curve; ≥ 2 a sheet (architecture: restarts training, asked first)")
        f.addRow("Latent size", self.latent)
        self._train_form = f
        self.conditional = QtWidgets.QCheckBox("Class-conditional (CFG)")
        self.conditional.setToolTip("Train with class labels, dropped 10% of the time, so "
                                    "classifier-free guidance can be used when sampling "
                                    "(toy data sets only; architecture: restarts training)")
        f.addRow(self.conditional)
        self.save_model = QtWidgets.QPushButton("Save model…")
        self.save_model.setToolTip("Save the trained model (weights and architecture) as a "
                                   ".safetensors file")
        self.load_model = QtWidgets.QPushButton("Load model…")
        self.load_model.setToolTip("Load a saved Lab model: sample it at once, and Train "
                                   "carries on from its weights")
        row = QtWidgets.QHBoxLayout()
        row.addWidget(self.save_model)
        row.addWidget(self.load_model)
        f.addRow(row)
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
        self.guidance_kind = _combo(
            {"Classifier-free": "cfg", "Classifier": "classifier"},
            "Classifier-free: a class-conditional model's ε_u + w (ε_c − ε_u). Classifier: "
            "an unconditional model's score plus w ∇log p(y | x_t) of a noise-aware classifier "
            "(exact for the oracle; train one with the button below). Diffusion only")
        f.addRow("Guidance by", self.guidance_kind)
        self.class_label = QtWidgets.QComboBox()
        self.class_label.addItem("all, in turn", None)
        self.class_label.setToolTip("Which class the guided samples are asked for: every class in "
                                    "turn, or one (watch it move to that class's core as w grows)")
        f.addRow("Class", self.class_label)
        self.train_classifier = QtWidgets.QPushButton("Train classifier")
        self.train_classifier.setToolTip("Train a noise-aware classifier p(y | x_t) on the same "
                                         "forward process (in a worker, ~1500 steps)")
        self.classifier_info = QtWidgets.QLabel("")
        self.classifier_info.setWordWrap(True)
        self.classifier_info.setToolTip("The classifier's training step and accuracy on noised points")
        f.addRow(self.train_classifier)
        f.addRow(self.classifier_info)
        self.bf16 = QtWidgets.QCheckBox("Fast preview (bfloat16)")
        self.bf16.setToolTip("Run the trained network's hidden layers in bfloat16: about twice "
                             "as fast on CPUs with AVX512-BF16, ~0.1% relative error per "
                             "evaluation. Off: float32, the exact arithmetic of training")
        f.addRow(self.bf16)
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
        self.compare = QtWidgets.QCheckBox("Compare side by side")
        self.compare.setToolTip("A second plot: the same initial noise through sampler B (or the "
                                "exact model), next to this one; the mean distance between "
                                "matching particles is shown")
        f.addRow(self.compare)
        self.sampler_b = QtWidgets.QComboBox()
        for key, label in lv.SAMPLER_LABELS.items():
            self.sampler_b.addItem(label, key)
        self.sampler_b.setCurrentIndex(list(lv.SAMPLER_LABELS).index("heun"))
        self.sampler_b.setToolTip("The right-hand plot's sampler (same NFE, η, guidance, noise)")
        f.addRow("Sampler B", self.sampler_b)
        self.exact_b = QtWidgets.QCheckBox("B uses the exact model")
        self.exact_b.setToolTip("Learned vs exact: the right plot samples the closed-form "
                                "score / velocity (mixtures only)")
        f.addRow(self.exact_b)
        self.nfe_button = QtWidgets.QPushButton("Quality vs NFE")
        self.nfe_button.setToolTip("Sliced W₂ to the target for NFE 1…200 with the chosen "
                                   "sampler (computed in a worker; the curve grows as it runs)")
        self.error_button = QtWidgets.QPushButton("Euler vs Heun")
        self.error_button.setToolTip("Distance of Euler and Heun solutions to a fine-step "
                                     "reference from the same noise, NFE 4…160: Euler's error "
                                     "falls like 1/NFE, Heun's like 1/NFE², but at few steps "
                                     "Euler can be ahead (the crossover)")
        row = QtWidgets.QHBoxLayout()
        row.addWidget(self.nfe_button)
        row.addWidget(self.error_button)
        f.addRow(row)
        self.sample_info = QtWidgets.QLabel("")
        self.sample_info.setWordWrap(True)
        self.sample_info.setToolTip("The last sampling run: sampler, NFE and its sliced W₂")
        f.addRow(self.sample_info)
        v.addWidget(self.sample_box)

        # ------------------------------------------------------------- rectified flow
        self.rf_box = QtWidgets.QGroupBox("Rectified flow")
        f = QtWidgets.QFormLayout(self.rf_box)
        self.source = QtWidgets.QComboBox()
        self.source.addItem("N(0, I)", "gaussian")
        for name in toy_data.DATASETS:
            self.source.addItem(name, name)
        self.source.setToolTip("Where the flow starts (t = 0): Gaussian noise, or any toy "
                               "distribution (e.g. 8gaussians → moons). Restarts training")
        f.addRow("Source", self.source)
        self.coupling = _combo(
            {"independent": "independent", "mini-batch OT": "ot"},
            "How noise and data are paired in a batch: independently, or by an exact optimal "
            "transport assignment within the batch (POT): straighter paths, fewer steps")
        f.addRow("Coupling", self.coupling)
        self.t_sampling = _combo(
            {"uniform": "uniform", "logit-normal (SD3)": "logit_normal"},
            "Which times t the loss is trained on: uniform, or logit-normal (Esser et al. 2024: "
            "more weight on the middle, where the velocity is hardest)")
        f.addRow("t sampling", self.t_sampling)
        self.reflow = QtWidgets.QPushButton("Reflow")
        self.reflow.setToolTip("Pair noise with where this flow's ODE takes it, and train a new "
                               "flow on those pairs (k-rectified flow): paths straighten, so few "
                               "steps suffice")
        self.one_step = QtWidgets.QPushButton("1-step samples")
        self.one_step.setToolTip("Sample with a single Euler step: x₁ = x₀ + v(x₀, 0)")
        row = QtWidgets.QHBoxLayout()
        row.addWidget(self.reflow)
        row.addWidget(self.one_step)
        f.addRow(row)
        self.straightness = QtWidgets.QLabel("")
        self.straightness.setWordWrap(True)
        self.straightness.setToolTip("Straightness E∫‖(x₁ − x₀) − v(x_t, t)‖² dt of the sampling "
                                     "paths: 0 for straight lines (one Euler step is then exact)")
        f.addRow(self.straightness)
        v.insertWidget(v.indexOf(self.train_box) + 1, self.rf_box)  # set-up, beside training

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
        self.gan_loss = _combo(
            {"non-saturating": "nonsaturating", "minimax": "minimax"},
            "Vanilla GAN's generator loss: minimax log(1 − D(G(z))) saturates when D wins early "
            "(tiny gradients); non-saturating −log D(G(z)) has the same fixed point and strong "
            "gradients (live)")
        f.addRow("G loss", self.gan_loss)
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
        self.rf_box.setVisible(fam == "rf")
        self.flow_box.setVisible(fam == "flow")
        self.gan_box.setVisible(fam == "gan")
        self.show_heat.setVisible(fam in ("flow", "gan"))
        self.conditional.setVisible(fam in ("diffusion", "rf"))
        gan = fam == "gan"
        for w in (self.lr_g, self.lr_d, self.n_critic, self.latent):
            self._train_form.setRowVisible(w, gan)
        self._train_form.setRowVisible(self.lr, not gan)
        self._train_form.setRowVisible(self.prediction, fam == "diffusion")
        for w in (self.guidance_kind, self.class_label, self.train_classifier, self.classifier_info):
            self.sample_box.layout().setRowVisible(w, fam == "diffusion")
        self.show_compare_rows(self.compare.isChecked())
        restrict_samplers(self.sampler_b, fam, fallback="heun")

    def show_compare_rows(self, on: bool) -> None:
        """Sampler B's own controls appear only in compare mode."""
        form = self.sample_box.layout()
        form.setRowVisible(self.sampler_b, on)
        form.setRowVisible(self.exact_b, on)
