"""nbgrader configuration of the course.

The repository root is nbgrader's course directory:
    solutions/<assignment>/   the instructor's source notebooks (solutions and hidden tests)
    notebooks/<assignment>/   what students open; made only by `nbgrader generate_assignment`
    submitted/, autograded/, feedback/, gradebook.db   the instructor's grading work (git-ignored)
"""

c = get_config()  # noqa: F821  (provided by nbgrader when it loads this file)

c.CourseDirectory.course_id = "edgeai"
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "notebooks"

# What a student sees in place of a solution.
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"

# Executing a notebook (validate, autograde): a cell that runs longer is stopped and scores zero.
c.Execute.timeout = 120
c.Execute.interrupt_on_timeout = True
