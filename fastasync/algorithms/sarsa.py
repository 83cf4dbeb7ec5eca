"""Asynchronous one-step Sarsa (Mnih et al. 2016, Algorithm S2).

    y_t = r_t + gamma * Q(s_{t+1}, a_{t+1}; theta^-)

where a_{t+1} is the action the behaviour policy actually takes next. At the end of a
segment the learner picks a_T for s_T (``carries_action``), uses it for the target, and then
takes it as the first action of the next segment, so every target uses the real next action.
"""

from .onestep_q import OneStepQ


class OneStepSarsa(OneStepQ):
    sarsa = True
    carries_action = True
