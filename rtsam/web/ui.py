"""The page: a drawer with the Segment and ITV tabs, the three slice views beside it."""

from __future__ import annotations

from ..presets import PRESETS
from .app import WINDOW_LEVEL
from .segment_tab import EXPORT_FORMATS


def build_ui(app):
    from trame.ui.vuetify3 import SinglePageWithDrawerLayout
    from trame.widgets import html, vuetify3 as v

    guarded = app.run_guarded
    segment, itv = app.segment_tab, app.itv_tab
    actions = {  # buttons call these by name: trigger('load_case')
        "load_case": lambda: guarded(app.load_case),
        "box_from_dose": lambda: guarded(segment.box_from_dose),
        "box_from_reference": lambda: guarded(segment.box_from_reference, app.state.seg_reference),
        "segment": lambda: guarded(segment.segment),
        "undo": lambda: guarded(segment.undo),
        "export": lambda: guarded(lambda: app.set_status(f"exported {segment.export()}")),
        "itv_load": lambda: guarded(itv.load),
        "itv_run": lambda: guarded(itv.run),
    }
    for name, action in actions.items():
        app.server.trigger(name)(action)
    app.server.trigger("slice_geometry")(app.slice_geometry)
    app.server.trigger("segment_contains")(segment.contains)
    app.server.trigger("jump_to")(app.jump_to)
    app.server.trigger("render_views")(app.render_views)

    with SinglePageWithDrawerLayout(app.server, full_height=True) as layout:
        layout.title.set_text("SlicerRTSAM web")
        with layout.toolbar:
            v.VSpacer()
            v.VChip("{{ segment.low_quality ? 'LOW quality' : 'quality' }} {{ segment.quality ?? 'n/a' }}",
                    v_if="segment", color=("segment.low_quality ? 'red' : 'green'",), variant="flat", classes="mr-4",
                    id="quality-flag")
            html.Span("{{ status }}", id="status", classes="text-body-2 mr-4")
            v.VProgressLinear(v_show="busy", model_value=("progress",), absolute=True, location="bottom",
                              color="primary", indeterminate=("progress === 0",))
        with layout.drawer as drawer:
            drawer.width = 400
            v.VAlert(v_show="error", text=("error",), type="error", density="compact", closable=True, id="error",
                     classes="ma-2")
            with v.VTabs(v_model=("tab",), density="compact", grow=True):
                v.VTab("Segment", value="segment", id="tab-segment")
                v.VTab("ITV", value="itv", id="tab-itv")
            with v.VWindow(v_model=("tab",)):
                with v.VWindowItem(value="segment"):
                    _segment_panel(v, html)
                with v.VWindowItem(value="itv"):
                    _itv_panel(v, html)
        with layout.content:
            with html.Div(style="position: relative; width: 100%; height: calc(100vh - 88px);"):
                app.layout_manager.initialize_layout_grid(layout)
    return layout


def _segment_panel(v, html):
    with v.VContainer(classes="pa-2"):
        v.VTextField(v_model=("case_path",), label="CT / MR: image file or DICOM folder (RTDOSE, RTSTRUCT)",
                     density="compact", id="case-path")
        v.VTextField(v_model=("mask_paths",), label="reference masks (label files, optional)", density="compact",
                     id="mask-paths")
        v.VBtn("Load", click="trigger('load_case')", id="load", block=True, disabled=("busy",))
        v.VSelect(v_model=("window_level",), items=(list(WINDOW_LEVEL),), label="window / level",
                  density="compact", classes="mt-2", id="window-level")
        v.VCombobox(v_model=("seg_task",), items=(list(PRESETS),), label="task", density="compact", id="task")
        v.VTextField(v_model=("seg_patient",), label="patient / dose text (optional)", density="compact")
        with v.VRow(dense=True):
            with v.VCol():
                v.VTextField(v_model=("seg_threshold",), label="dose threshold x Dmax", type="number",
                             density="compact")
            with v.VCol():
                v.VTextField(v_model=("seg_margin",), label="box margin (mm)", type="number", density="compact")
        v.VBtn("Box from dose", click="trigger('box_from_dose')", disabled=("!case_info || !case_info.dose || busy",),
               block=True, id="box-dose")
        v.VSelect(v_model=("seg_reference",), items=("reference_names",), label="reference segment",
                  density="compact", classes="mt-2", id="reference")
        v.VBtn("Box from segment", click="trigger('box_from_reference')", disabled=("!seg_reference || busy",),
               block=True, id="box-reference")
        html.Div("box: {{ seg_box_text }}", classes="text-caption my-1", id="box-text")
        v.VCheckbox(v_model=("seg_presence",), label="Leave slices where the lesion ends empty (experimental)",
                    hint="LiteMedSAM: no mask on a loose box's slices past the lesion; off by default, it cost "
                         "some boxes Dice", persistent_hint=True, density="compact", id="presence")
        v.VBtn("Segment", click="trigger('segment')", color="primary", block=True, disabled=("!case_info || busy",),
               id="segment")
        html.Div("clicks in the slice views:", classes="text-caption mt-2")
        with v.VBtnToggle(v_model=("click_mode",), mandatory=True, density="compact", divided=True, id="click-mode"):
            v.VBtn("Off", value="none", id="click-none")
            v.VBtn("Include", value="include", color="green", id="click-include")
            v.VBtn("Exclude", value="exclude", color="purple", id="click-exclude")
        v.VBtn("Undo", click="trigger('undo')", disabled=("!segment || busy",), classes="ml-2", id="undo")
        _segment_result(v, html)
        v.VTextField(v_model=("export_path",), label="export to (.seg.nrrd or .dcm)", density="compact",
                     classes="mt-2", id="export-path")
        v.VSelect(v_model=("export_format",), items=([{"value": k, "title": t} for k, t in EXPORT_FORMATS.items()],),
                  label="format", density="compact", id="export-format")
        v.VBtn("Export", click="trigger('export')", disabled=("!segment || busy",), block=True, id="export")


def _segment_result(v, html):
    with v.VCard(v_if="segment", classes="mt-2", variant="tonal", id="segment-card"):
        with v.VCardText():
            v.VChip("quality {{ segment.quality === null ? 'n/a' : segment.quality }}",
                    color=("segment.low_quality ? 'red' : 'green'",), id="quality")
            html.Span(" LOW: review this segment", v_if="segment.low_quality", classes="text-red font-weight-bold")
            html.Div("{{ segment.volume_ml }} ml, {{ segment.voxels }} voxels; {{ segment.includes }} include, "
                     "{{ segment.excludes }} exclude clicks", classes="mt-1")
            html.Div("Dice with {{ seg_reference }}: {{ segment.dice_reference }}",
                     v_if="segment.dice_reference !== null")
            html.Div("{{ segment.summary }}", classes="text-caption")


def _itv_panel(v, html):
    with v.VContainer(classes="pa-2"):
        v.VTextarea(v_model=("itv_phases_path",), rows=2, density="compact", id="itv-phases",
                    label="4DCT: phase files (one per line), a .seq.nrrd or a DICOM folder")
        v.VBtn("Load 4DCT", click="trigger('itv_load')", block=True, disabled=("busy",), id="itv-load")
        v.VTextField(v_model=("itv_reference",), label="reference phase (index)", type="number", density="compact",
                     classes="mt-2")
        with v.VRadioGroup(v_model=("itv_prompt",), inline=True, density="compact"):
            v.VRadio(label="GTV file", value="gtv")
            v.VRadio(label="box (Segment tab)", value="box")
        v.VTextField(v_model=("itv_gtv_path",), label="GTV mask on the reference phase", density="compact",
                     v_show="itv_prompt === 'gtv'", id="itv-gtv")
        v.VSelect(v_model=("itv_propagation",), items=(["rigid", "deformable", "engine"],), label="propagation",
                  density="compact")
        v.VBtn("Run ITV", click="trigger('itv_run')", color="primary", block=True,
               disabled=("!itv_phase_count || busy",), id="itv-run")
        v.VSlider(v_model=("itv_phase",), min=0, max=("Math.max(itv_phase_count - 1, 0)",), step=1, show_ticks=True,
                  label="phase", v_show="itv_phase_count", thumb_label=True, classes="mt-2", id="itv-phase")
        with v.VCard(v_if="itv_result", variant="tonal", id="itv-card"):
            with v.VCardText():
                html.Div("ITV {{ itv_result.itv_volume_ml }} ml", classes="font-weight-bold", id="itv-volume")
                html.Div("phase {{ row.label }}: {{ row.volume_ml }} ml", v_for="row in itv_result.phases")
                html.Div(v_html="itv_result.plot", classes="mt-2", id="motion-plot")
