"""The manager in the browser: a studio and its seat map (drawn by clicking and dragging),
resize, plays, shows (a clash shown at its field), cancelling a show, deleting a play and a
studio, and the box-office dashboard, whose figures are the API's."""

import re
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

from playwright.sync_api import expect

from tests.browser.conftest import check_a11y, fill_form, shot, sign_in, unique


def test_manager_draws_a_studio_schedules_and_cancels_shows(person, staff, http):
    name, password, api = staff("manager")
    page = person()
    sign_in(page, name, password)
    page.get_by_role("link", name="Studios").click()
    expect(page.get_by_role("heading", name="New studio")).to_be_visible()
    check_a11y(page, "studios")
    hall = unique("Hall")
    fill_form(page.get_by_role("form", name="New studio"),
              {"Name": hall, "Rows": "4", "Seats per row": "6"}, submit="Create")
    expect(page.get_by_role("heading", name=f"Seat map of {hall}")).to_be_visible()
    studio_id = int(re.search(r"studios/(\d+)", page.url)[1])

    # Drag down column 3 with the aisle brush, click one broken seat, save.
    page.get_by_label("Aisle").check()
    first = page.get_by_role("button", name="Row 1, place 3: Seat")
    last = page.get_by_role("button", name="Row 4, place 3: Seat")
    first.hover()
    page.mouse.down()
    page.get_by_role("button", name="Row 2, place 3: Seat").hover()
    page.get_by_role("button", name="Row 3, place 3: Seat").hover()
    last.hover()
    page.mouse.up()
    expect(page.get_by_role("button", name=re.compile(r"place 3: Aisle"))).to_have_count(4)
    page.get_by_label("Broken").check()
    page.get_by_role("button", name="Row 2, place 5: Seat").click()
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_text("Saved.")).to_be_visible()
    check_a11y(page, "seat-map editor")
    shot(page, "manager-seat-map-editor", doc=True)
    plan = {(s["row"], s["col"]): s["kind"]
            for s in api.get(f"/studios/{studio_id}/seats")["seats"]}
    assert [plan[(r, 3)] for r in range(1, 5)] == ["aisle"] * 4
    assert plan[(2, 5)] == "broken"
    assert api.get(f"/studios/{studio_id}")["seat_count"] == 24 - 5

    # Rename and resize: a fifth row appears.
    details = page.get_by_role("form", name="Studio details")
    hall = unique("Grand hall")
    details.get_by_label("Name").fill(hall)
    details.get_by_label("Rows").fill("5")
    details.get_by_role("button", name="Save details").click()
    expect(page.get_by_role("heading", name=f"Seat map of {hall}")).to_be_visible()
    expect(page.get_by_role("button", name="Row 5, place 1: Seat")).to_be_visible()
    studio = api.get(f"/studios/{studio_id}")
    assert (studio["rows"], studio["name"]) == (5, hall)

    # A play, a show, and a second show at the same time in the same studio: refused at the
    # field, with the API's words.
    page.get_by_role("link", name="Plays and shows").click()
    play_name = unique("Tosca")
    form = page.get_by_role("form", name="New play")
    form.get_by_label("Name").fill(play_name)
    form.get_by_label("Kind").select_option("opera")
    form.get_by_label("Last day").fill(str(datetime.now(UTC).date() + timedelta(days=30)))
    form.get_by_label("Price").fill("120")
    form.get_by_role("button", name="Create").click()
    expect(page.get_by_role("cell", name=play_name, exact=True)).to_be_visible()
    show_form = page.get_by_role("form", name="Schedule a show")
    when = (datetime.now() + timedelta(days=3)).strftime("%Y-%m-%dT19:00")
    for attempt in range(2):
        show_form.get_by_label("Play").select_option(label=play_name)
        show_form.get_by_label("Studio").select_option(label=hall)
        show_form.get_by_label("Starts at").fill(when)
        show_form.get_by_role("button", name="Create").click()
        if attempt == 0:
            expect(page.get_by_text("Created.")).to_be_visible()
    starts_at = show_form.get_by_label("Starts at")
    expect(starts_at).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_text(re.compile(r"^overlaps schedule \d+$"))).to_be_visible()
    expect(page.get_by_role("alert").first).to_contain_text("overlaps")
    check_a11y(page, "plays and shows")
    shows = api.get(f"/schedules?studio_id={studio_id}")["items"]
    assert len(shows) == 1 and shows[0]["price"] == 12000

    # Edit the play's price; move the show; a show with a ticket sold cannot be re-priced.
    page.get_by_role("button", name=f"Edit {play_name}").click()
    editing = page.get_by_role("form", name=f"Edit play: {play_name}")
    editing.get_by_label("Price").fill("150")
    editing.get_by_role("button", name="Save").click()
    expect(page.get_by_role("row").filter(has_text=play_name).filter(
        has_text="CN¥150.00")).to_have_count(1)
    assert api.get(f"/plays/{shows[0]['play_id']}")["price"] == 15000
    page.get_by_role("button", name=re.compile(f"^Edit: {play_name}")).click()
    moving = page.get_by_role("form", name=re.compile(f"Move or re-price: {play_name}"))
    moving.get_by_label("Starts at").fill(when.replace("T19:00", "T20:30"))
    moving.get_by_role("button", name="Save").click()
    expect(moving).to_have_count(0)
    moved = api.get(f"/schedules/{shows[0]['id']}")["starts_at"]
    assert datetime.fromisoformat(moved).astimezone().strftime("%H:%M") == "20:30"
    _, _, buyer = staff("customer")
    held = buyer.post("/reservations", {"schedule_id": shows[0]["id"],
                                        "seats": [{"row": 1, "col": 1}]})
    buyer.post(f"/reservations/{held['id']}/pay", {})
    page.get_by_role("button", name=re.compile(f"^Edit: {play_name}")).click()
    moving.get_by_label("Price").fill("99")
    moving.get_by_role("button", name="Save").click()
    expect(moving.get_by_role("alert")).to_contain_text(
        re.compile(r"tickets held \(0\) or sold \(1\)"))
    check_a11y(page, "editing a show")

    # A play with an upcoming show that has a ticket sold cannot be deleted; the API says why.
    delete_play = page.get_by_role("button", name=f"Delete {play_name}")
    delete_play.click()
    expect(delete_play).to_have_text("Delete this play? Its upcoming shows are cancelled.")
    delete_play.click()
    expect(page.get_by_role("alert").filter(has_text="tickets sold")).to_be_visible()

    cancel = page.get_by_role("button", name=re.compile(f"^Cancel show: {play_name}"))
    cancel.click()
    page.get_by_role("button", name=re.compile(f"Cancel this show.*{play_name}")).click()
    expect(page.get_by_text("The show is cancelled")).to_be_visible()
    assert api.get(f"/schedules/{shows[0]['id']}")["status"] == "cancelled"

    # Its show cancelled, the play can go, and then the studio (no upcoming show left).
    expect(page.get_by_role("button", name=f"Delete {play_name}")).to_have_text("Delete")
    page.get_by_role("button", name=f"Delete {play_name}").click()
    page.get_by_role("button", name=f"Delete {play_name}").click()
    expect(page.get_by_text(f"Deleted {play_name}; its upcoming shows are cancelled.")
           ).to_be_visible()
    assert api.get(f"/plays?q={quote(play_name)}")["items"] == []
    page.get_by_role("link", name="Studios").click()
    delete_studio = page.get_by_role("button", name=f"Delete {hall}")
    delete_studio.click()
    expect(delete_studio).to_have_text("Delete this studio?")
    delete_studio.click()
    expect(page.get_by_text(f"Deleted {hall}.")).to_be_visible()
    assert api.get(f"/studios?q={quote(hall)}")["items"] == []
    check_a11y(page, "a studio deleted")


def test_dashboard_figures_equal_the_apis(person, staff, new_show, manager_api):
    # About 30 minutes away: the door is open, and one ticket goes in.
    show = new_show(rows=3, cols=4, play_name=unique("Carmen"), price=5000, days=0.02)
    _, _, buyer = staff("customer")
    held = buyer.post("/reservations", {"schedule_id": show["id"],
                                        "seats": [{"row": 1, "col": 1}, {"row": 1, "col": 2}]})
    paid = buyer.post(f"/reservations/{held['id']}/pay", {"payment_ref": "x"})
    buyer.post(f"/tickets/{paid['tickets'][0]['id']}/refund")
    _, _, clerk = staff("clerk")
    clerk.post("/checkins", {"code": buyer.get(f"/tickets/{paid['tickets'][1]['id']}")["code"]})
    # The order service's figures follow the events: wait until it has counted them.
    deadline = time.monotonic() + 30
    while True:
        report = manager_api.get("/box-office?group_by=play")["items"]
        line = next((i for i in report if i["key"] == show["play_id"]), None)
        if line and (line["tickets_refunded"], line["checked_in"]) == (1, 1) \
                or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert line == {**line, "tickets_sold": 2, "tickets_refunded": 1, "gross": 10000,
                    "refunded": 5000, "net": 5000, "checked_in": 1, "no_show": 0}
    name, password, _ = staff("manager")
    page = person()
    sign_in(page, name, password)
    expect(page.get_by_role("heading", name="Box-office dashboard")).to_be_visible()
    row = page.get_by_role("row").filter(has_text=show["play_name"])
    expect(row.get_by_role("cell")).to_have_text(
        [show["play_name"], "2", "1", "CN¥100.00", "CN¥50.00", "CN¥50.00", "1", "0"])
    expect(page.get_by_role("img", name="Net takings by play")).to_be_visible()
    # Every line of the page's table is a line of the API's report.
    total = sum(i["tickets_sold"] - i["tickets_refunded"] for i in report)
    expect(page.get_by_text(re.compile(rf"^Total: {total:,} tickets"))).to_be_visible()

    page.get_by_label("Play", exact=True).select_option(label=show["play_name"])
    figures = manager_api.get(f"/box-office/plays/{show['play_id']}")["schedules"][0]
    assert abs(figures["occupancy"] - 1 / 12) < 0.001
    occupancy = page.get_by_role("table", name=re.compile("Occupancy of"))
    expect(occupancy.get_by_role("row").nth(1).get_by_role("cell")).to_have_text(
        [re.compile(r"\d"), "2", "1", "CN¥50.00", "8.3%", "1", "—"])  # no-shows once ended
    check_a11y(page, "dashboard")
    shot(page, "manager-dashboard", doc=True)

    page.get_by_label("Group by").select_option("studio")
    page.get_by_role("button", name="Show").click()
    expect(page.get_by_role("row").filter(has_text=show["studio_name"]).get_by_role(
        "cell")).to_have_text([show["studio_name"], "2", "1", "CN¥100.00", "CN¥50.00",
                               "CN¥50.00", "1", "0"])

    page.get_by_label("Group by").select_option("day")
    page.get_by_role("button", name="Show").click()
    show_day = show["starts_at"][:10]
    line = next(i for i in manager_api.get("/box-office?group_by=day")["items"]
                if i["key"] == show_day)
    label = datetime.fromisoformat(show_day).strftime("%b %-d, %Y")
    expect(page.get_by_role("row").filter(has_text=label).get_by_role("cell")).to_have_text(
        [label, f"{line['tickets_sold']:,}", f"{line['tickets_refunded']:,}",
         f"CN¥{line['gross'] / 100:,.2f}", f"CN¥{line['refunded'] / 100:,.2f}",
         f"CN¥{line['net'] / 100:,.2f}", f"{line['checked_in']:,}", f"{line['no_show']:,}"])


def test_manager_schedules_a_series_and_is_told_which_shows_clash(person, staff):
    """Three shows a day apart at 19:00 in a studio where the second day's 19:00 is taken: two
    are scheduled, and the third-party clash is named with its time."""
    name, password, api = staff("manager")
    studio = api.post("/studios", {"name": unique("Hall"), "rows": 2, "cols": 2})
    today = datetime.now(UTC).date()
    play = api.post("/plays", {"name": unique("Series"), "kind": "drama", "rating": "all",
                               "duration_minutes": 90, "starts_on": str(today),
                               "ends_on": str(today + timedelta(days=30)), "price": 5000})
    first = (datetime.now() + timedelta(days=3)).replace(hour=19, minute=0, second=0,
                                                         microsecond=0)
    taken = api.post("/schedules", {"play_id": play["id"], "studio_id": studio["id"],
                                    "starts_at": (first + timedelta(days=1)).astimezone()
                                    .isoformat()})
    page = person()
    sign_in(page, name, password, then="programme")
    scheduling = page.get_by_role("form", name="Schedule a show")
    scheduling.get_by_label("Play").select_option(label=play["name"])
    scheduling.get_by_label("Studio").select_option(label=studio["name"])
    fill_form(scheduling, {"Starts at": first.strftime("%Y-%m-%dT%H:%M"),
                           "Repeat": "daily", "Number of shows": "3"})
    check_a11y(page, "scheduling a series")
    scheduling.get_by_role("button", name="Create").click()
    expect(scheduling.get_by_text("Created 2 of 3 shows.")).to_be_visible()
    refused = scheduling.get_by_role("alert")
    expect(refused).to_contain_text("Some shows were not scheduled:")
    expect(refused.get_by_role("listitem")).to_have_count(1)
    expect(refused.get_by_role("listitem")).to_contain_text(f"overlaps show {taken['id']}")
    starts = sorted(datetime.fromisoformat(s["starts_at"]) for s in api.get(
        f"/schedules?studio_id={studio['id']}")["items"])
    assert starts == [(first + timedelta(days=d)).astimezone() for d in range(3)], starts
    assert not page.errors
