"""The Lab's sampling tools: re-sampling on slider drags, compare mode, guidance (with a
classifier trained in its own worker), reflow, the learned field, quality and error curves,
the reverse-process scrub and its GIF.

A mixin of :class:`widgets.lab_panel.LabPanel`: every job runs in one of the panel's runners
(``sample_runner`` for samples and flow-layer views, ``curve_runner`` for NFE / error curves,
``field_runner``, ``clf_runner``), each cancelling its previous request, so a drag draws only
the newest result. All numbers come from ``engines.lab_views``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6 import QtGui

from engines import lab_views as lv
from engines import toy_data
from engines.jobs import ParamBox
from widgets.lab_controls import T_STEPS
from widgets.panel import signals_blocked
from widgets.points import PointCloudItem


class LabSamplingMixin:
    """Sampling, comparing and guiding a trained (or the exact) model (module docstring)."""

    # provided by LabPanel
    _view: Any
    _train: lv.LabTrainSnapshot | None
    _classifier: tuple[tuple, tuple[dict, dict]] | None
    _classifier_pending: tuple | None
    _straightness: dict[int, float]

    def _show_straightness(self, s: lv.LabTrainSnapshot) -> None:
        """Straightness per reflow round: 1-RF, 2-RF, ... (lower = straighter paths)."""
        r = int(getattr(s, "reflow_round", 0))
        if getattr(s, "straightness", None) is not None:
            self._straightness[r] = float(s.straightness)  # type: ignore[arg-type]
        parts = [f"{k + 1}-RF {v:.3g}" for k, v in sorted(self._straightness.items())]
        self.ctl.straightness.setText("Straightness: " + " → ".join(parts) if parts else "")

    def _on_view_control(self) -> None:
        """A sampling or flow-view control moved: update labels, re-sample shortly."""
        c = self.ctl
        c.nfe_label.setText(str(c.nfe.value()))
        c.eta_label.setText(f"{c.eta.value() / 100:.2f}")
        c.guidance_label.setText(f"{c.guidance.value() / 10:.1f}")
        c.layer_label.setText(f"{c.layer.value()}/{c.layer.maximum()}")
        c.temperature_label.setText(f"{c.temperature.value() / 100:.2f}")
        self.train_params.update(temperature=c.temperature.value() / 100)
        self._update_guidance_controls()
        self._resample_timer.start()

    def _sampling_kwargs(self) -> dict[str, Any] | None:
        fam, c, s = self.family, self.ctl, self._train
        exact = c.exact.isChecked() and self.exact_available
        if fam not in ("diffusion", "rf") or (not exact and (s is None or s.state is None)):
            return None
        kw: dict[str, Any] = dict(
            config=None if s is None else s.config, state=None if s is None else s.state,
            gmm=self._gmm, exact=exact, sampler=str(c.sampler.currentData()),
            eta=c.eta.value() / 100, guidance=c.guidance.value() / 10, seed=self.seed.value(),
            class_label=c.class_label.currentData(), bf16=c.bf16.isChecked())
        if fam == "diffusion":
            kw["schedule"] = self.schedule_key
            kind = str(c.guidance_kind.currentData())
            kw["guidance_kind"] = kind
            if kind == "classifier":
                kw["classifier"] = self._current_classifier()
        else:
            kw["source"] = self._rf_source()
        return kw

    def _rf_source(self) -> str:
        return str(self.ctl.source.currentData())

    def _classifier_key(self) -> tuple[str, str, int, int]:
        """What a trained classifier depends on: the data, its schedule and seed."""
        return (self.dataset.currentText(), self.schedule_key, self.seed.value(), len(self._data))

    def _current_classifier(self) -> tuple[dict, dict] | None:
        if self._classifier is None or self._classifier[0] != self._classifier_key():
            return None
        return self._classifier[1]

    def request_view(self) -> None:
        """Re-sample (diffusion/RF) or rebuild the flow's layer view in the sampling worker.

        Starting a job there cancels the one before it, and the runner never delivers an old
        run's result: dragging a slider only ever draws the newest request.
        """
        self._resample_timer.stop()
        fam, c, s = self.family, self.ctl, self._train
        job: Any = None
        if fam in ("diffusion", "rf"):
            kw = self._sampling_kwargs()
            if kw is not None and self._guidance_problem(kw) is None:
                common = dict(nfe=c.nfe.value(), n=self.particles.value(),
                              target=self._target_sample(), **kw)
                if c.compare.isChecked():
                    right = {"sampler": str(c.sampler_b.currentData()),
                             "exact": c.exact_b.isChecked() and self.exact_available}
                    if right["exact"] or kw["state"] is not None:  # B can sample too
                        job = lv.compare_job(fam, {}, right, **common)
                    else:
                        c.sample_info.setText("<i>Sampler B uses the learned model: train it "
                                              "first, or tick 'B uses the exact model'.</i>")
                else:
                    job = lv.sample_job(fam, **common)
            elif kw is not None:
                c.sample_info.setText(f"<i>{self._guidance_problem(kw)}</i>")
        elif fam == "flow" and s is not None and s.state is not None and s.config is not None:
            job = lv.flow_view_job(s.config, s.state, c.layer.value(), data=self._target_sample(),
                                   temperature=c.temperature.value() / 100,
                                   n=min(self.particles.value(), 4000), seed=self.seed.value())
        if job is not None:
            self.sample_runner.start(job)

    def _on_field_control(self) -> None:
        self.ctl.field_t_label.setText(f"{self.ctl.field_t.value() / 100:.2f}")
        self._apply_toggles()
        if not self.ctl.show_field.isChecked():
            self.field_item.setField(np.zeros((0, 2)), np.zeros((0, 2)))
            self.heat_item.clearHeat()
            return
        self.request_field()

    @staticmethod
    def _set_title(item: pg.TextItem, plot: pg.PlotWidget, text: str) -> None:
        rect = plot.getPlotItem().vb.viewRect()
        item.setPos(rect.left(), rect.bottom())
        item.setHtml(f"<span style='color:#e6e6e6'>{text}</span>")

    def _on_compare_toggled(self, on: bool) -> None:
        self.ctl.show_compare_rows(on)
        self.compare_plot.setVisible(on and self.family in ("diffusion", "rf"))
        if self._density is not None:
            self.compare_density.setDensity(self._density, self._extent)
        self.compare_density.setVisible(self.show_density.isChecked() and self._density is not None)
        if not on:
            self.compare_cloud.setData(np.zeros((0, 2)))
            self.compare_traj.setPaths(np.zeros((0, 0, 2)))
        self._resample_timer.start()

    def _guidance_problem(self, kw: dict[str, Any]) -> str | None:
        """Why the chosen guidance cannot run yet (None: it can)."""
        if kw.get("guidance_kind") == "classifier" and not kw["exact"] and kw.get("classifier") is None:
            return "Classifier guidance needs a classifier: press 'Train classifier' (or tick 'Exact model')."
        return None

    def _update_guidance_controls(self) -> None:
        """Enable the guidance slider only where it does something."""
        c, s = self.ctl, self._train
        kind = str(c.guidance_kind.currentData())
        conditional = bool(s is not None and s.config and s.config.get("n_classes"))
        exact = c.exact.isChecked() and self.exact_available
        usable = (conditional or exact) if kind == "cfg" else self.family == "diffusion"
        c.guidance.setEnabled(usable and c.class_label.count() > 1)
        c.class_label.setEnabled(c.guidance.isEnabled())
        c.train_classifier.setEnabled(kind == "classifier" and self._named_data()
                                      and not self.clf_runner.is_active)

    def _fill_classes(self) -> None:
        combo = self.ctl.class_label
        k = toy_data.n_classes(self.dataset.currentText()) if self._named_data() else 0
        with signals_blocked(combo):
            combo.clear()
            combo.addItem("all, in turn", None)
            if k > 1:
                for i in range(k):
                    combo.addItem(f"class {i}", i)

    def request_classifier(self) -> None:
        """Train a noise-aware classifier for classifier guidance, in its own worker."""
        if not self._named_data():
            self.show_error("Classifier guidance needs class labels: pick a named toy data set.")
            return
        name = self.dataset.currentText()
        key = self._classifier_key()
        self._classifier = None
        self.ctl.classifier_info.setText("training the classifier…")
        self.ctl.train_classifier.setEnabled(False)
        job = lv.classifier_train_job(ParamBox(), name, schedule=self.schedule_key,
                                      seed=self.seed.value())
        self._classifier_pending = key
        self.clf_runner.start(job)

    def _on_classifier_snapshot(self, snap: Any) -> None:
        if self._classifier_pending != self._classifier_key():
            return  # the data changed under it: a stale classifier
        best = (f" (best possible {100 * snap.bayes_accuracy:.0f}%)"
                if snap.bayes_accuracy is not None else "")
        self.ctl.classifier_info.setText(
            f"classifier: step {snap.step}/{snap.total_steps} · accuracy on noised points "
            f"{100 * snap.accuracy:.0f}%{best}")
        if snap.done and snap.state is not None:
            self._classifier = (self._classifier_pending, (snap.config, snap.state))
            self._update_guidance_controls()
            self.request_view()

    def start_reflow(self) -> None:
        """Train a (k+1)-rectified flow on (noise, ODE(noise)) pairs of the current one."""
        s = self._train
        if self.family != "rf" or s is None or s.state is None or s.config is None:
            self.show_error("Reflow starts from a trained rectified flow: train one first.")
            return
        round_index = int(getattr(s, "reflow_round", 0)) + 1
        if s.straightness is not None:
            self._straightness[round_index - 1] = float(s.straightness)
        self.history.clear()
        self.curves.clear()
        self.banner.hide()
        c = self.ctl
        self.train_params.update(lr=c.lr.value(), batch_size=c.batch.value())
        job = lv.reflow_job(self.train_params, config=s.config, state=s.state,
                            target=self._target_sample(), source=self._rf_source(),
                            round_index=round_index, seed=self.seed.value(), device=self.device)
        self.runner.start(job, self.train_params)

    def one_step_samples(self) -> None:
        """Euler, NFE 1: after reflow the paths are nearly straight, so this nearly suffices."""
        c = self.ctl
        c.sampler.setCurrentIndex(list(lv.SAMPLER_LABELS).index("euler"))
        c.nfe.setValue(1)
        self.request_view()

    def request_error_curve(self) -> None:
        """Euler vs Heun: RMS distance to a fine ODE solution against NFE, in its own worker."""
        kw = self._sampling_kwargs()
        if kw is None:
            self.show_error("Train the model first (or tick 'Exact model' on a mixture).")
            return
        extra = ({"schedule": self.schedule_key} if self.family == "diffusion"
                 else {"source": kw["source"]})
        self.curves.set_error({}, {})
        self.curve_runner.start(lv.error_curve_job(
            self.family, config=kw["config"], state=kw["state"], gmm=self._gmm,
            exact=kw["exact"], seed=self.seed.value(), **extra))

    @property
    def exact_available(self) -> bool:
        """An exact model exists for what is shown: a mixture target, and for rectified flow
        a N(0, I) source (the oracle velocity is the one from Gaussian noise)."""
        if self._gmm is None:
            return False
        return self.family != "rf" or str(self.ctl.source.currentData()) == "gaussian"

    @property
    def exact_field_comparable(self) -> bool:
        """Whether |learned − exact| measures model error: not for an RF trained with OT
        pairs or after reflow, whose (straighter) field is a different, equally valid one."""
        if not self.exact_available:
            return False
        if self.family != "rf":
            return True
        s = self._train
        return self._arch.coupling == "independent" and (s is None or s.reflow_round == 0)

    def _update_exact_controls(self) -> None:
        c = self.ctl
        ok = self.exact_available
        for box in (c.exact, c.exact_b):
            box.setEnabled(ok)
            box.setToolTip(box.toolTip().split("\n")[0] + ("" if ok else
                           "\nNot here: the exact velocity is for noise from N(0, I) to a mixture"))

    def request_field(self) -> None:
        """The learned field at the chosen t (and |learned − exact|), in its own worker."""
        s = self._train
        if self.family not in ("diffusion", "rf") or s is None or s.state is None:
            return
        extra = {"schedule": self.schedule_key} if self.family == "diffusion" else {}
        gmm = self._gmm if self.exact_field_comparable else None
        self.field_runner.start(lv.field_job(
            self.family, config=s.config, state=s.state, gmm=gmm,
            t=self.ctl.field_t.value() / 100, extent=self._extent, **extra))

    def _on_field_snapshot(self, view: lv.FieldView) -> None:
        if self.family not in ("diffusion", "rf") or not self.ctl.show_field.isChecked():
            return
        xmin, xmax, ymin, ymax = view.extent
        cell = min(xmax - xmin, ymax - ymin) / 21
        self.field_item.setField(view.origins, lv.arrow_display_vectors(view.learned, cell))
        if view.diff is not None:
            img, _, hi = lv.heat_levels(view.diff, log=False)
            self.heat_item.setHeat(img, view.extent, (0.0, hi))
        else:
            self.heat_item.clearHeat()
            if self._gmm is not None:  # a mixture, but this field is not the oracle's to match
                self.ctl.sample_info.setText(
                    "Arrows: the learned velocity. No |learned − exact| map: the exact field is "
                    "that of independent pairs from N(0, I); OT pairs, reflow or another source "
                    "learn a different (straighter) field, not an error.")

    def request_nfe_curve(self) -> None:
        """Sliced W2 against NFE for the chosen sampler, in its own worker."""
        kw = self._sampling_kwargs()
        if kw is None:
            self.show_error("Train the model first (or tick 'Exact model' on a mixture).")
            return
        self.curves.set_nfe(np.zeros(0), np.zeros(0))
        self.curve_runner.start(lv.nfe_curve_job(self.family, target=self._target_sample(), **kw))

    def _on_nfe_snapshot(self, curve: Any) -> None:
        if isinstance(curve, lv.ErrorCurve):
            self.curves.set_error(curve.nfe, curve.error)
        else:
            self.curves.set_nfe(curve.nfe, curve.swd)

    @staticmethod
    def _describe_sample(snap: lv.LabSampleSnapshot) -> str:
        which = "exact model" if snap.exact else "learned model"
        swd = f" · sliced W₂ {snap.swd:.3f}" if snap.swd is not None else ""
        straight = (f" · straightness {snap.straightness:.3g}"
                    if getattr(snap, "straightness", None) is not None else "")
        return f"{which}: {lv.SAMPLER_LABELS[snap.sampler]}, NFE {snap.nfe}{swd}{straight}"

    def _on_view_snapshot(self, snap: Any) -> None:
        self._view = snap
        c = self.ctl
        fam = self.family
        if isinstance(snap, lv.LabComparison) and fam in ("diffusion", "rf"):
            self.cloud.setData(snap.left.samples)
            self.traj_item.setPaths(snap.left.trajectories)
            self.compare_cloud.setData(snap.right.samples)
            self.compare_traj.setPaths(snap.right.trajectories)
            self.compare_traj.setVisible(self.show_traj.isChecked())
            a, b = self._describe_sample(snap.left), self._describe_sample(snap.right)
            c.sample_info.setText(f"A — {a}<br>B — {b}<br>same noise; mean distance between "
                                  f"matching particles <b>{snap.mean_distance:.3f}</b>")
            self._set_title(self.title_item, self.plot, f"A: {a}")
            self._set_title(self.compare_title, self.compare_plot, f"B: {b}")
            self._show_learned_frame()
        elif isinstance(snap, lv.LabSampleSnapshot) and fam in ("diffusion", "rf"):
            self.cloud.setData(snap.samples)
            self.traj_item.setPaths(snap.trajectories)
            c.sample_info.setText(self._describe_sample(snap))
            self._show_learned_frame()
        elif isinstance(snap, lv.FlowLayerView) and self.family == "flow":
            self.grid_item.setLines(*lv.polyline_arrays(snap.grid))
            self.cloud.setData(snap.base)
            self.latent_cloud.setData(snap.data_latent)
            c.layer_label.setText(f"{snap.k}/{snap.n_layers}")
            rect = self.plot.getPlotItem().vb.viewRect()
            self.title_item.setPos(rect.left(), rect.bottom())
            self.title_item.setHtml(f"<span style='color:#e6e6e6'>after {snap.k} of {snap.n_layers} "
                                    f"layers (last: {snap.label})</span>")

    def _show_learned_frame(self) -> None:
        """The learned model's last sampling run at the slider's t (its reverse process)."""
        view, t = self._view, self.t
        self.t_value.setText(f"t = {t:.2f}")
        pairs: list[tuple[lv.LabSampleSnapshot, PointCloudItem, pg.TextItem, pg.PlotWidget, str]] = []
        if isinstance(view, lv.LabComparison):
            pairs = [(view.left, self.cloud, self.title_item, self.plot, "A: "),
                     (view.right, self.compare_cloud, self.compare_title, self.compare_plot, "B: ")]
        elif isinstance(view, lv.LabSampleSnapshot):
            pairs = [(view, self.cloud, self.title_item, self.plot, "")]
        for snap, cloud, title, plot, tag in pairs:
            hit = snap.frame_at(t)
            if hit is None:
                continue
            cloud.setData(hit[1])
            shown = float(snap.frame_times[hit[0]])  # type: ignore[index]
            if abs(shown - lv.data_end(self.time_process)) > 1e-9:
                who = "exact" if snap.exact else "learned"
                self._set_title(title, plot, f"{tag}{who} model's reverse process "
                                f"({lv.SAMPLER_LABELS[snap.sampler]}): particles at t = {shown:.2f}")
            else:
                self._set_title(title, plot, f"{tag}{self._describe_sample(snap)}")

    def _sampling_run(self) -> lv.LabSampleSnapshot | None:
        """The last sampling run with frames (the left one in compare mode), if any."""
        view = self._view
        snap = view.left if isinstance(view, lv.LabComparison) else view
        if self.family in ("diffusion", "rf") and isinstance(snap, lv.LabSampleSnapshot) \
                and snap.frames is not None and snap.frame_times is not None:
            return snap
        return None

    def has_animation(self) -> bool:
        return self._sampling_run() is not None or super().has_animation()

    def animation_frames(
        self, max_frames: int = 120, size: tuple[int, int] | None = None
    ) -> list[QtGui.QImage]:
        """Diffusion / RF with a sampling run: the sampling animation, noise to data (the
        t slider walked through the run's frames, both plots in compare mode). Otherwise
        the training frames."""
        run = self._sampling_run()
        if run is None:
            return super().animation_frames(max_frames, size)
        from widgets.export import render_widget

        times = run.frame_times
        assert times is not None
        if len(times) > max_frames:
            times = times[np.linspace(0, len(times) - 1, max_frames).round().astype(int)]
        target = self.export_widget()
        keep = self.t_slider.value()
        frames: list[QtGui.QImage] = []
        try:
            for t in times:
                self.t_slider.setValue(round(float(t) * T_STEPS))
                frames.append(render_widget(target, size))
        finally:
            self.t_slider.setValue(keep)
        return frames

