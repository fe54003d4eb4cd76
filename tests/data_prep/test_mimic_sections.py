from data_prep.mimic_sections import report_sections, split_sections
from data_prep.records import clean_text

REPORT = """                                 FINAL REPORT
 EXAMINATION:  CHEST (PA AND LAT)
 
 INDICATION:  ___ year old woman with ?pleural effusion  // ?pleural effusion
 
 TECHNIQUE:  Chest PA and lateral
 
 COMPARISON:  ___
 
 FINDINGS: 
 
 Cardiac size cannot be evaluated.  Large left pleural effusion is new.  Small
 right effusion is new.  The upper lungs are clear.  There is no pneumothorax.
 
 IMPRESSION: 
 
 Large left pleural effusion
"""


def test_the_reference_layout():
    sections = report_sections(REPORT)
    assert clean_text(sections["findings"], "___").startswith("Cardiac size cannot be evaluated. Large left")
    assert clean_text(sections["findings"], "___").endswith("There is no pneumothorax.")
    assert clean_text(sections["impression"], "___") == "Large left pleural effusion"
    assert clean_text(sections["comparison"], "___") == "___"


def test_last_occurrence_wins_and_synonyms_map():
    text = "\n FINDINGS: first look\n IMPRESSION: early read\n CONCLUSION: final read\n"
    assert report_sections(text)["impression"].strip() == "final read"
    assert report_sections("\n IMPRESSON: misspelled header\n")["impression"].strip() == "misspelled header"
    assert report_sections("\n FINDINGS AND IMPRESSION: both at once\n")["impression"].strip() == "both at once"


def test_headers_need_the_leading_space_and_upper_case():
    text = "\n FINDINGS: lungs clear.\nIMPRESSION: not a header (no leading space)\n note: not a header\n"
    sections = report_sections(text)
    assert "impression" not in sections
    assert "not a header (no leading space)" in sections["findings"]


def test_empty_sections_are_dropped_and_last_paragraph_kicks_in():
    text = " FINAL REPORT\n INDICATION: cough\n \n No acute process. Lungs are clear.\n FINDINGS: \n"
    names = [name for name, _ in split_sections(text)]
    assert "findings" not in names and "last_paragraph" in names
    sections = report_sections(text)
    assert "findings" not in sections and sections["last_paragraph"].strip() == "No acute process. Lungs are clear."


def test_addendum_before_the_report_stays_in_the_preamble():
    text = " ADDENDUM: call made to ___\n ______________________________\n" + REPORT
    assert clean_text(report_sections(text)["impression"], "___") == "Large left pleural effusion"
    assert split_sections(text)[0][0] == "preamble"


def test_report_without_headers():
    assert split_sections("just text")[0][0] == "full report"
    assert report_sections("") == {}


def test_placeholders_are_unified():
    assert clean_text("Compared to ___ and x-XXXX, XXXX-year-old", "___") == "Compared to ___ and x-___, ___-year-old"
    assert clean_text("a  ___  b\n c", "") == "a b c"
