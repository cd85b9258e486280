"""The default grade schemes (GRADING.md), seeded by a data migration and by ``services.schemes_ensure``.

Each scheme: code, disease code (None: any disease), name, description, agreement rule, steps, active, options;
each option: code, label, ordinal, referable, ungradable, synonyms, keyboard shortcut.
"""

UNGRADABLE = ["UG", "Ungradable", "Not gradable", "Cannot grade", "Insufficient", "Ungradeable"]

# code, disease code (None: any disease), name, description, rule, steps, active, options
# option: code, label, ordinal, referable, ungradable, synonyms, shortcut
SCHEMES = [
    (
        "icdr",
        "DR",
        "ICDR diabetic retinopathy",
        "International Clinical Diabetic Retinopathy severity scale (Wilkinson 2003). Referable: moderate NPDR or worse.",
        "exact",
        1,
        True,
        [
            (
                "0",
                "No apparent retinopathy",
                0,
                False,
                False,
                ["No DR", "NDR", "None", "Normal", "No apparent retinopathy", "R0", "No signs of DR detected"],
                "0",
            ),
            ("1", "Mild NPDR", 1, False, False, ["Mild", "Mild NPDR", "MA only", "R1"], "1"),
            ("2", "Moderate NPDR", 2, True, False, ["Moderate", "Mod NPDR", "Moderate NPDR", "R2"], "2"),
            ("3", "Severe NPDR", 3, True, False, ["Severe", "Severe NPDR", "Very severe NPDR"], "3"),
            (
                "4",
                "Proliferative DR",
                4,
                True,
                False,
                ["PDR", "Proliferative", "Proliferative DR", "R3", "R3A", "R3S"],
                "4",
            ),
            ("U", "Ungradable", -1, False, True, UNGRADABLE, "U"),
        ],
    ),
    (
        "dr-referable",
        "DR",
        "Referable diabetic retinopathy (yes / no)",
        "Binary referable-DR outcome, as many AI systems and screening programmes report it.",
        "exact",
        1,
        False,
        [
            (
                "NRDR",
                "No referable DR",
                0,
                False,
                False,
                ["No", "No referable DR", "NRDR", "No signs of DR detected", "Non referable DR"],
                "",
            ),
            ("RDR", "Referable DR", 1, True, False, ["Yes", "Referable DR", "RDR", "Signs of DR detected"], ""),
            ("U", "Ungradable", -1, False, True, UNGRADABLE, "U"),
        ],
    ),
    (
        "icdr-dme",
        "DR",
        "ICDR diabetic macular oedema",
        "International Clinical DME scale. Referable: DME present.",
        "exact",
        1,
        False,
        [
            ("absent", "DME absent", 0, False, False, ["Absent", "No DME", "None"], ""),
            (
                "non-centre",
                "Non-centre-involving DME",
                1,
                True,
                False,
                ["Non-centre-involving", "Non centre involving DME", "NCI-DME", "Present"],
                "",
            ),
            ("centre", "Centre-involving DME", 2, True, False, ["Centre-involving", "Center-involving", "CI-DME"], ""),
            ("U", "Ungradable", -1, False, True, UNGRADABLE, "U"),
        ],
    ),
    (
        "nhs-desp",
        "DR",
        "NHS DESP retinopathy",
        "English NHS Diabetic Eye Screening Programme retinopathy grades (R2L / R2H since 2025). Referable: R2H, R3A.",
        "exact",
        1,
        False,
        [
            ("R0", "R0 No retinopathy", 0, False, False, ["No retinopathy"], ""),
            ("R1", "R1 Background", 1, False, False, ["Background"], ""),
            ("R2", "R2 Pre-proliferative (before 2025)", 2, True, False, ["Pre-proliferative"], ""),
            ("R2L", "R2L Pre-proliferative, low risk", 2, False, False, [], ""),
            ("R2H", "R2H Pre-proliferative, high risk", 3, True, False, [], ""),
            ("R3S", "R3S Stable treated proliferative", 4, False, False, ["Stable treated"], ""),
            ("R3A", "R3A Active proliferative", 5, True, False, ["Active proliferative", "R3"], ""),
            ("U", "Ungradable", -1, False, True, UNGRADABLE, "U"),
        ],
    ),
    (
        "nhs-desp-maculopathy",
        "DR",
        "NHS DESP maculopathy",
        "NHS DESP maculopathy grades. Referable: M1.",
        "exact",
        1,
        False,
        [
            ("M0", "M0 No maculopathy", 0, False, False, ["No maculopathy"], ""),
            ("M1", "M1 Maculopathy", 1, True, False, ["Maculopathy"], ""),
            ("U", "Ungradable", -1, False, True, UNGRADABLE, "U"),
        ],
    ),
    (
        "glaucoma",
        "GLAUCOMA",
        "Glaucoma screening",
        "Referable glaucoma on fundus photographs (e.g. vertical cup-to-disc ratio ≥ 0.7 or inter-eye difference ≥ 0.2).",
        "exact",
        1,
        True,
        [
            (
                "NRG",
                "No referable glaucoma",
                0,
                False,
                False,
                ["No Referable Glaucoma", "No referable glacuoma", "Normal", "No", "NRG"],
                "",
            ),
            (
                "RG",
                "Referable glaucoma",
                1,
                True,
                False,
                ["Referable Glaucoma", "Referable glacuoma", "Refer", "Suspect", "Glaucoma", "Glacuoma", "Yes", "RG"],
                "",
            ),
            ("U", "Ungradable", -1, False, True, UNGRADABLE, "U"),
        ],
    ),
    (
        "glaucoma-clinical",
        "GLAUCOMA",
        "Glaucoma (clinical wording)",
        "Normal / suspect / glaucoma. Referable: suspect or worse.",
        "referral",
        1,
        False,
        [
            ("normal", "Normal", 0, False, False, ["No glaucoma", "Healthy"], ""),
            ("suspect", "Glaucoma suspect", 1, True, False, ["Suspect", "Glaucoma suspect", "Glacuoma suspect"], ""),
            ("glaucoma", "Glaucoma", 2, True, False, ["Glaucoma", "Glacuoma", "Glaucomatous"], ""),
            ("U", "Ungradable", -1, False, True, UNGRADABLE, "U"),
        ],
    ),
    (
        "amd-beckman",
        "AMD",
        "AMD (Beckman classification)",
        "Beckman Initiative clinical classification (Ferris 2013). Referable: intermediate AMD or worse.",
        "exact",
        1,
        True,
        [
            (
                "none",
                "No apparent ageing changes",
                0,
                False,
                False,
                ["None", "No AMD", "No apparent aging changes"],
                "",
            ),
            (
                "normal-ageing",
                "Normal ageing changes",
                1,
                False,
                False,
                ["Normal ageing", "Normal aging changes", "Normal aging"],
                "",
            ),
            ("early", "Early AMD", 2, False, False, ["Early"], ""),
            ("intermediate", "Intermediate AMD", 3, True, False, ["Intermediate"], ""),
            (
                "late",
                "Late AMD (geographic atrophy / neovascular)",
                4,
                True,
                False,
                ["Late", "Late AMD", "GA", "Geographic atrophy", "Neovascular", "Neovascular AMD", "Wet AMD", "nAMD"],
                "",
            ),
            ("U", "Ungradable", -1, False, True, UNGRADABLE, "U"),
        ],
    ),
    (
        "image-quality",
        None,
        "Image quality",
        "Whether the photograph can be graded. Applies to any disease; not used by grading queues.",
        "exact",
        1,
        False,
        [
            ("good", "Good", 0, False, False, ["Good quality", "Excellent"], ""),
            ("adequate", "Adequate", 1, False, False, ["Acceptable", "Fair", "Usable"], ""),
            ("insufficient", "Insufficient (ungradable)", 2, False, True, [*UNGRADABLE, "Poor", "Inadequate"], "U"),
        ],
    ),
]


def seed(Disease, GradeScheme, GradeOption) -> None:
    """Create the schemes and options that do not exist yet; an existing scheme (and admins' edits to it) is left alone."""
    for code, disease_code, name, description, rule, steps, active, options in SCHEMES:
        disease = Disease.objects.filter(code=disease_code).first() if disease_code else None
        if disease_code and disease is None:
            continue
        if active and GradeScheme.objects.filter(disease=disease, is_active=True).exclude(code=code).exists():
            active = False
        scheme, created = GradeScheme.objects.get_or_create(
            code=code,
            defaults={
                "disease": disease,
                "name": name,
                "description": description,
                "agreement_rule": rule,
                "agreement_steps": steps,
                "is_active": active,
            },
        )
        if not created:
            continue  # an admin may have retired or added options since: theirs to keep
        GradeOption.objects.bulk_create(
            GradeOption(
                scheme=scheme,
                code=opt_code,
                label=label,
                ordinal=ordinal,
                referable=referable,
                ungradable=ungradable,
                synonyms=list(synonyms),
                shortcut=shortcut,
            )
            for opt_code, label, ordinal, referable, ungradable, synonyms, shortcut in options
        )
